//! metamessages: see the operations of the v1.1.0 contract.
