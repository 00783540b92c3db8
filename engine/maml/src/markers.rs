//! The lines that open and close a signature block (MAML.md).

pub const BEGIN: &str = "<!-- MAML:SIGNATURE:BEGIN -->";
pub const END: &str = "<!-- MAML:SIGNATURE:END -->";
