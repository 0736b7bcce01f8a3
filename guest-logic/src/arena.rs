//! An allocator for a policy component that makes a call's allocations
//! nearly free: a bump arena that starts over whenever nothing allocated
//! from it is alive any more, which is the case between two calls (the
//! host's arguments, the rules' frames and the returned actions are all
//! freed by the end of a call, the last in the export's post-return).
//!
//! What does not fit (a large frame, or an arena that a long-lived value
//! keeps from starting over) goes to the system allocator (dlmalloc), so
//! nothing fails that would not fail without it. In the server, the default
//! rules spent about a twelfth of their time in dlmalloc and dlfree.
//!
//! Only for a single-threaded guest (wasm32 components are), which is why
//! it is `Sync` there only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// The arena's bytes, aligned for anything the rules allocate.
#[repr(C, align(16))]
struct Bytes<const N: usize>([u8; N]);

/// A bump arena of `N` bytes in front of the system allocator.
pub struct CallArena<const N: usize> {
    bytes: UnsafeCell<Bytes<N>>,
    /// Offset of the first free byte.
    top: Cell<usize>,
    /// Allocations from the arena not yet freed.
    live: Cell<usize>,
}

// SAFETY: a wasm32 component runs on one thread; nothing else can reach it.
#[cfg(target_arch = "wasm32")]
unsafe impl<const N: usize> Sync for CallArena<N> {}

impl<const N: usize> CallArena<N> {
    pub const fn new() -> Self {
        CallArena {
            bytes: UnsafeCell::new(Bytes([0; N])),
            top: Cell::new(0),
            live: Cell::new(0),
        }
    }

    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }

    /// Room for `layout` in the arena, or null.
    fn bump(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let start = (base + self.top.get()).next_multiple_of(layout.align()) - base;
        match start.checked_add(layout.size()) {
            Some(end) if end <= N => {
                self.top.set(end);
                self.live.set(self.live.get() + 1);
                // SAFETY: `start..end` lies inside the arena's bytes.
                unsafe { (self.bytes.get() as *mut u8).add(start) }
            }
            _ => std::ptr::null_mut(),
        }
    }

    /// Bytes of the arena in use (for tests).
    pub fn used(&self) -> usize {
        self.top.get()
    }
}

impl<const N: usize> Default for CallArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl<const N: usize> GlobalAlloc for CallArena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.bump(layout);
        if ptr.is_null() {
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc(layout) }
        } else {
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not ours, so the system allocator's.
            return unsafe { System.dealloc(ptr, layout) };
        }
        let live = self.live.get().saturating_sub(1);
        self.live.set(live);
        if live == 0 {
            self.top.set(0);
        } else if ptr as usize + layout.size() == self.base() + self.top.get() {
            // The last allocation (a temporary): its bytes can be reused.
            self.top.set(ptr as usize - self.base());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A string or vector growing at the top grows in place.
        if self.owns(ptr) && ptr as usize + layout.size() == self.base() + self.top.get() {
            let start = ptr as usize - self.base();
            if let Some(end) = start.checked_add(new_size).filter(|end| *end <= N) {
                self.top.set(end);
                return ptr;
            }
        }
        // SAFETY: the caller's contract, passed on; `Layout` was valid for
        // the old size and `new_size` is checked by the caller.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn starts_over_when_everything_is_freed() {
        let arena = CallArena::<1024>::new();
        unsafe {
            let a = arena.alloc(layout(10, 1));
            let b = arena.alloc(layout(8, 8));
            assert!(arena.owns(a) && arena.owns(b));
            assert_eq!(b as usize % 8, 0);
            assert!(arena.used() >= 18);
            arena.dealloc(a, layout(10, 1));
            assert!(arena.used() >= 18, "b is still alive");
            arena.dealloc(b, layout(8, 8));
            assert_eq!(arena.used(), 0);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator() {
        let arena = CallArena::<64>::new();
        unsafe {
            let big = arena.alloc(layout(100, 1));
            assert!(!big.is_null() && !arena.owns(big));
            big.write_bytes(7, 100);
            let small = arena.alloc(layout(16, 1));
            assert!(arena.owns(small));
            arena.dealloc(big, layout(100, 1));
            arena.dealloc(small, layout(16, 1));
            assert_eq!(arena.used(), 0);
        }
    }

    #[test]
    fn growth_at_the_top_is_in_place_and_elsewhere_copies() {
        let arena = CallArena::<256>::new();
        unsafe {
            let a = arena.alloc(layout(4, 1));
            a.copy_from(b"abcd".as_ptr(), 4);
            let a2 = arena.realloc(a, layout(4, 1), 8);
            assert_eq!(a, a2, "grown in place");
            let b = arena.alloc(layout(4, 1));
            let a3 = arena.realloc(a2, layout(8, 1), 16);
            assert_ne!(a3, a2, "not at the top: moved");
            assert_eq!(std::slice::from_raw_parts(a3, 4), b"abcd");
            // Past the arena's end: to the system allocator, contents kept.
            let a4 = arena.realloc(a3, layout(16, 1), 1000);
            assert!(!arena.owns(a4));
            assert_eq!(std::slice::from_raw_parts(a4, 4), b"abcd");
            arena.dealloc(a4, layout(1000, 1));
            arena.dealloc(b, layout(4, 1));
            assert_eq!(arena.used(), 0);
        }
    }

    #[test]
    fn a_value_that_outlives_calls_only_costs_the_arena_its_room() {
        let arena = CallArena::<128>::new();
        unsafe {
            let kept = arena.alloc(layout(8, 1));
            for _ in 0..100 {
                let t = arena.alloc(layout(32, 1));
                assert!(!t.is_null());
                arena.dealloc(t, layout(32, 1));
            }
            // The temporaries were each the last allocation: reused.
            assert!(arena.used() <= 8);
            arena.dealloc(kept, layout(8, 1));
        }
    }
}
