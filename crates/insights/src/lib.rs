//! Clients of the models honcho-rs calls over the network or runs in process.
