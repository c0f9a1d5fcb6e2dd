//! Mini-batch iteration for epochs.
