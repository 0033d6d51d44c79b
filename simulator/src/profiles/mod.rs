//! Device profiles: each emulates one kind of device with its real protocol.

pub mod camera;
pub mod esp32;
pub mod house;
pub mod meter;
pub mod mikrotik;
pub mod sensor;
pub mod shelly;
