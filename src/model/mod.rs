//! The model on the device: weights uploaded from the mapped files (and, with the forward pass,
//! the KV cache and activations), with every byte accounted to its tensor class.

pub mod weights;
