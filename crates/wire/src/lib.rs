//! Wire types: the JSON (and, later, XML) shapes of every protocol keyway speaks as a
//! client or serves from its local cloud. Both sides use the same structs so field
//! names are written once; neither side's logic lives here. No IO, no clock.

pub mod aws;
pub mod google;
pub mod int64;
