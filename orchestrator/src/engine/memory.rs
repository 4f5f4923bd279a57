//! Giving the allocator's free memory back to the kernel after a burst of work.
//!
//! glibc keeps what a burst freed in its arenas (a stack's `up` of hundreds of containers makes
//! their configs, records, requests and replies on several threads at once), so the daemon's
//! resident size after the burst stays near its peak while it idles: after the `up` of 800
//! services about half of its anonymous memory was free chunks (30 MB resident, 14 MB after a
//! `malloc_trim`), and a `ps` of those 800 took it back up by 16 MB. Trimming once the burst
//! is over returns those pages.

/// Returns the allocator's free pages to the kernel (off the async threads: it walks the
/// arenas). For the end of a verb that allocated in proportion to a stack (`up`, `down`, `ps`)
/// and of each netd reconcile.
pub async fn give_back() {
    #[cfg(target_env = "gnu")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        /// One trim at a time: a second asked for meanwhile would find little more to return.
        static TRIMMING: AtomicBool = AtomicBool::new(false);
        if TRIMMING.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Clears the flag however the wait ends (a caller may drop this future).
        struct Done;
        impl Drop for Done {
            fn drop(&mut self) {
                TRIMMING.store(false, Ordering::Release);
            }
        }
        let done = Done;
        let _ = tokio::task::spawn_blocking(move || {
            // SAFETY: malloc_trim only releases free memory of this process's own allocator.
            unsafe { libc::malloc_trim(0) };
            drop(done);
        })
        .await;
    }
}
