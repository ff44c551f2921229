"""An MT5 Web API simulator: the same protocol as a real MT5 server (see
../shared/reference/mt5-webapi.md) over real HTTP(S), so the CRM's client and any third-party
client can be exercised without a MetaQuotes server. It runs as its own process
(`fxcrm mt5-sim`) and keeps its state in one SQLite file."""
