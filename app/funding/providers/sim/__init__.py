"""The payment simulators: the card/e-wallet provider (`server`, `fxcrm pay-sim`) and, mounted in
the same server under /chain, the simulated crypto chain (`chain`)."""
