//! Index bit manipulations shared by fusion and the kernels: amplitude index bit q is qubit q.

/// Bit j of `x` moved to bit `positions[j]`.
#[inline(always)]
pub fn deposit(x: usize, positions: &[usize]) -> usize {
    positions
        .iter()
        .enumerate()
        .fold(0, |acc, (j, &p)| acc | (((x >> j) & 1) << p))
}

/// Bit `positions[j]` of `x` moved to bit j: the inverse of [`deposit`].
#[inline(always)]
pub fn extract(x: usize, positions: &[usize]) -> usize {
    positions
        .iter()
        .enumerate()
        .fold(0, |acc, (j, &p)| acc | (((x >> p) & 1) << j))
}

/// `x` with a zero bit inserted at each of the ascending `positions`: the base index of the x-th
/// group of amplitudes a gate on those qubits mixes.
#[inline(always)]
pub fn insert_zeros(x: usize, positions: &[usize]) -> usize {
    positions
        .iter()
        .fold(x, |b, &p| ((b >> p) << (p + 1)) | (b & ((1 << p) - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_extract_and_insert_zeros() {
        assert_eq!(deposit(0b101, &[1, 4, 6]), 0b100_0010);
        assert_eq!(extract(0b100_0010, &[1, 4, 6]), 0b101);
        assert_eq!(insert_zeros(0b111, &[0, 2]), 0b11010);
        for x in 0..64 {
            assert_eq!(
                extract(deposit(x, &[0, 3, 5, 7, 8, 9]), &[0, 3, 5, 7, 8, 9]),
                x
            );
            assert_eq!(insert_zeros(x, &[1, 4]) & 0b10010, 0);
        }
    }
}
