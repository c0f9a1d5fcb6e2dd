//! Loss functions (mean-reduced) and their unreduced `per_sample` forms.
