//! Conversions to and from other crates' types, behind optional features:
//! `ndarray` (to and from `ndarray` arrays) and `serde` (`Serialize` and
//! `Deserialize` for tensors and for the optimizers' configs).

#[cfg(feature = "ndarray")]
mod ndarray;
#[cfg(feature = "serde")]
mod serde;
