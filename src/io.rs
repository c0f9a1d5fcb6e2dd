//! Checkpoints in the safetensors format.
