//! End-to-end test support: building the image and running QEMU.
