//! How the process takes memory from the kernel.

/// Turns transparent huge pages off for this process and the processes it starts (the
/// workers). mimalloc asks for huge pages on its arenas, and then every first touch of a
/// 2 MiB region has the kernel clear all of it: in profiles of catch-ups with and without
/// an asynchronous module that clearing was the largest single difference, and with huge
/// pages off the catch-ups ran 9–13% faster (README, "Choosing the allocator"). Failing
/// is harmless: huge pages only cost time.
pub(crate) fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of the calling process.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}
