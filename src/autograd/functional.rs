//! Function transforms built on [`grad`](crate::grad).
