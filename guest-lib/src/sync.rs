//! Locks and one-time cells for a guest whose only concurrency is its own
//! interrupt handlers (and, later, other vCPUs).
//!
//! [`IrqMutex`] disables interrupts while it is held: an event-channel upcall
//! that wanted the same lock would otherwise spin forever on the vCPU that
//! holds it. It also spins, so it stays correct once more vCPUs run.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::arch::cpu;

/// A spin lock that masks interrupts on the local vCPU while held.
pub struct IrqMutex<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `locked`; T must be Send to be
// handed between contexts (interrupt handler and main code).
unsafe impl<T: Send> Sync for IrqMutex<T> {}
// SAFETY: owning the mutex is owning the T.
unsafe impl<T: Send> Send for IrqMutex<T> {}

impl<T> IrqMutex<T> {
    /// A new, unlocked mutex.
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    /// Masks interrupts and takes the lock, spinning while another vCPU holds it.
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let irq = cpu::irq_save();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        IrqGuard { mutex: self, irq }
    }

    /// Takes the lock if it is free; never spins. Used on paths (panic,
    /// exceptions) that may have interrupted the lock's holder.
    pub fn try_lock(&self) -> Option<IrqGuard<'_, T>> {
        let irq = cpu::irq_save();
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(IrqGuard { mutex: self, irq })
        } else {
            cpu::irq_restore(irq);
            None
        }
    }

    /// Takes the lock even if it is held.
    ///
    /// # Safety
    /// The holder must never run again (the caller is on its way to crash the
    /// domain), so the two never touch the data at the same time.
    pub unsafe fn force_lock(&self) -> IrqGuard<'_, T> {
        let irq = cpu::irq_save();
        self.locked.swap(true, Ordering::Acquire);
        IrqGuard { mutex: self, irq }
    }
}

/// Proof that an [`IrqMutex`] is held; unlocks and restores the interrupt
/// flag when dropped.
pub struct IrqGuard<'a, T> {
    mutex: &'a IrqMutex<T>,
    irq: bool,
}

impl<T> IrqGuard<'_, T> {
    /// Whether interrupts were enabled before this lock masked them.
    pub fn interrupts_were_enabled(&self) -> bool {
        self.irq
    }
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and &mut self makes this unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, Ordering::Release);
        cpu::irq_restore(self.irq);
    }
}

const EMPTY: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

/// A value set once (at boot) and read many times afterwards.
pub struct Once<T> {
    state: AtomicU8,
    value: UnsafeCell<core::mem::MaybeUninit<T>>,
}

// SAFETY: the value is written once before `state` becomes READY (Release)
// and only read after READY is seen (Acquire); it is never written again.
unsafe impl<T: Send + Sync> Sync for Once<T> {}

impl<T> Once<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(core::mem::MaybeUninit::uninit()),
        }
    }

    /// Stores `value` if the cell is empty and returns the stored value;
    /// returns `Err(value)` if it was already set.
    pub fn set(&self, value: T) -> Result<&T, T> {
        if self
            .state
            .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            return Err(value);
        }
        // SAFETY: BUSY gives this caller exclusive access to an empty slot.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        // SAFETY: just written, never written again.
        Ok(unsafe { (*self.value.get()).assume_init_ref() })
    }

    /// The stored value, if set.
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY means initialised and immutable from now on.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutex_locks_and_unlocks() {
        let m = IrqMutex::new(1);
        {
            let mut g = m.lock();
            *g += 1;
            assert!(m.try_lock().is_none());
        }
        assert_eq!(*m.lock(), 2);
    }

    #[test]
    fn once_sets_once() {
        let o = Once::new();
        assert!(o.get().is_none());
        assert_eq!(*o.set(5).unwrap(), 5);
        assert_eq!(o.set(6), Err(6));
        assert_eq!(o.get(), Some(&5));
    }
}
