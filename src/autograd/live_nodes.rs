//! A count of the graph nodes alive on this thread, in the crate's own tests only
//! (to check that gradient graphs are freed); compiled to nothing otherwise.

#[cfg(test)]
thread_local! {
    static LIVE: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
pub(crate) fn created() {
    #[cfg(test)]
    let _ = LIVE.try_with(|c| c.set(c.get() + 1));
}

#[inline(always)]
pub(crate) fn dropped() {
    #[cfg(test)]
    let _ = LIVE.try_with(|c| c.set(c.get() - 1));
}

/// Nodes created minus nodes dropped on this thread so far.
#[cfg(test)]
pub(crate) fn count() -> isize {
    LIVE.with(std::cell::Cell::get)
}
