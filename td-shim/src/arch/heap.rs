//! The firmware heap: a linked-list allocator over the [`HEAP`](td_layout::layout::HEAP) region.

use super::phys::{take, RamRegion};
use linked_list_allocator::LockedHeap;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Gives the heap region to the allocator. Returns false if the region was already taken.
pub fn init() -> bool {
    let Some(region) = take(RamRegion::Heap) else {
        return false;
    };
    ALLOCATOR.lock().init_from_slice(as_uninit(region));
    true
}

// `init_from_slice` wants `&'static mut [MaybeUninit<u8>]`; u8 and MaybeUninit<u8> have the same
// layout, and initialised bytes are valid MaybeUninit.
fn as_uninit(s: &'static mut [u8]) -> &'static mut [core::mem::MaybeUninit<u8>] {
    let len = s.len();
    // SAFETY: same layout and length; the original borrow is consumed.
    unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), len) }
}
