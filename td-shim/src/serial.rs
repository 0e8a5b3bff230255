//! A `log` backend on the 16550 UART at COM1, through the platform's port I/O.

use crate::port_io::PortIo;
use core::fmt::{self, Write};

/// COM1's base port.
pub const COM1: u16 = 0x3F8;

/// A 16550 UART.
pub struct Uart<'a, P: PortIo + ?Sized> {
    io: &'a P,
    base: u16,
}

impl<'a, P: PortIo + ?Sized> Uart<'a, P> {
    /// The UART at `base`.
    pub const fn new(io: &'a P, base: u16) -> Self {
        Uart { io, base }
    }

    /// 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        let b = self.base;
        self.io.outb(b + 1, 0x00); // IER: no interrupts
        self.io.outb(b + 3, 0x80); // LCR: DLAB
        self.io.outb(b, 0x01); // divisor low: 115200
        self.io.outb(b + 1, 0x00); // divisor high
        self.io.outb(b + 3, 0x03); // LCR: 8N1
        self.io.outb(b + 2, 0xC7); // FCR: enable and clear FIFOs
        self.io.outb(b + 4, 0x03); // MCR: DTR, RTS
    }

    // Waits until the transmitter is empty, but never forever: a missing UART reads 0xFF.
    fn wait_for_fifo(&self) {
        for _ in 0..100_000 {
            if self.io.inb(self.base + 5) & 0x20 != 0 {
                break;
            }
        }
    }

    /// Sends `bytes`: one status check per 16 bytes (the FIFO `init` enables is 16 deep), since
    /// every port access is a VM exit (or an emulated one).
    fn send(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(FIFO_DEPTH) {
            self.wait_for_fifo();
            for &b in chunk {
                self.io.outb(self.base, b);
            }
        }
    }
}

/// Depth of the 16550's transmit FIFO.
const FIFO_DEPTH: usize = 16;

impl<P: PortIo + ?Sized> Write for Uart<'_, P> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Lines end in CR LF on the wire.
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.send(b"\r\n");
            }
            self.send(line.as_bytes());
        }
        Ok(())
    }
}

/// The firmware's logger: every record as one line `td-shim: LEVEL message` on COM1, through
/// the port I/O of the platform it is attached to. Until [`SerialLogger::attach`], it drops
/// everything (no port is touched before the platform's early initialisation).
pub struct SerialLogger {
    io: spin::Once<&'static (dyn PortIo + Sync)>,
    lock: spin::Mutex<()>,
}

impl Default for SerialLogger {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialLogger {
    /// A logger not yet attached to any port I/O.
    pub const fn new() -> Self {
        SerialLogger {
            io: spin::Once::new(),
            lock: spin::Mutex::new(()),
        }
    }

    /// Attaches the logger to `io` and initialises the UART, once; later calls change nothing.
    pub fn attach(&self, io: &'static (dyn PortIo + Sync)) {
        self.io.call_once(|| {
            Uart::new(io, COM1).init();
            io
        });
    }

    /// Writes one line without going through `log` (used by the fatal path, which must print
    /// even if the logger is held).
    pub fn write_line(&self, args: fmt::Arguments<'_>) {
        if let Some(io) = self.io.get() {
            let mut uart = Uart::new(*io, COM1);
            let _ = uart.write_fmt(args);
            let _ = uart.write_str("\n");
        }
    }
}

impl log::Log for SerialLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(io) = self.io.get() else { return };
        let _guard = self.lock.lock();
        let mut uart = Uart::new(*io, COM1);
        let _ = writeln!(uart, "td-shim: {:5} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    /// Bytes sent, and how many times the line status was read.
    struct Capture(RefCell<Vec<u8>>, RefCell<usize>);
    impl PortIo for Capture {
        fn inb(&self, port: u16) -> u8 {
            assert_eq!(port, COM1 + 5);
            *self.1.borrow_mut() += 1;
            0x20
        }
        fn outb(&self, port: u16, value: u8) {
            if port == COM1 {
                self.0.borrow_mut().push(value);
            }
        }
        fn outw(&self, _port: u16, _value: u16) {}
        fn outl(&self, _port: u16, _value: u32) {}
        fn inl(&self, _port: u16) -> u32 {
            u32::MAX
        }
    }

    #[test]
    fn lines_end_in_crlf() {
        let io = Capture(RefCell::new(Vec::new()), RefCell::new(0));
        let mut uart = Uart::new(&io, COM1);
        write!(uart, "a\nb\n").unwrap();
        assert_eq!(io.0.borrow().as_slice(), b"a\r\nb\r\n");
    }

    #[test]
    fn one_status_check_per_fifo_load() {
        let io = Capture(RefCell::new(Vec::new()), RefCell::new(0));
        let mut uart = Uart::new(&io, COM1);
        uart.write_str(&"x".repeat(40)).unwrap();
        assert_eq!(io.0.borrow().len(), 40);
        assert_eq!(*io.1.borrow(), 3, "40 bytes = 3 FIFO loads");
    }
}
