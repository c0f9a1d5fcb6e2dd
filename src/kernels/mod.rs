//! Loops over slices: the numeric work behind the ops, with no knowledge of autograd.
//!
//! Each kernel takes a buffer and a [`Layout`](crate::layout::Layout) and has a fast
//! path for contiguous rows (plain slice loops that LLVM vectorises) and a general
//! strided path. Ops in `crate::ops` call these; they contain no loops themselves.

pub(crate) mod approx;
pub(crate) mod elementwise;
pub(crate) mod gather;
pub(crate) mod gemm;
pub(crate) mod norm;
pub(crate) mod parallel;
pub(crate) mod reduce;
