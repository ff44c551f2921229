"""Funding: the double-entry ledger of client wallets, trading accounts and payment providers."""
