"""KYC controllers: the client portal's documents pages and the staff file handler.

(The compliance review queue lives in `app.kyc.controllers.staff`.)
"""

from app.kyc.controllers.files import KycFiles
from app.kyc.controllers.portal import PortalDocuments

__all__ = ["KycFiles", "PortalDocuments"]
