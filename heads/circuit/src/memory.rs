//! What a statevector costs in memory, and what this machine has for one: the door sizes its
//! limits with these, and the CPU backend refuses a state that would not fit.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// complex64: 8 bytes per amplitude.
    Single,
    /// complex128: 16 bytes per amplitude.
    Double,
}

impl Precision {
    pub fn bytes_per_amplitude(self) -> u64 {
        match self {
            Precision::Single => 8,
            Precision::Double => 16,
        }
    }

    /// Bytes of a statevector of `num_qubits` qubits; saturates rather than overflow.
    pub fn state_bytes(self, num_qubits: usize) -> u128 {
        1u128
            .checked_shl(num_qubits as u32)
            .and_then(|a| a.checked_mul(self.bytes_per_amplitude() as u128))
            .unwrap_or(u128::MAX)
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Single => "single",
            Precision::Double => "double",
        }
    }
}

/// The memory this machine can give a new state now (`MemAvailable`), in bytes, when the system
/// says.
pub fn available_memory() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
