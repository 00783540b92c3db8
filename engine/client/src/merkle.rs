//! The Merkle tree that lets one signature cover a batch of receipts.
//!
//! Hashing as in RFC 6962 (certificate transparency), with SHA3-256: a leaf is
//! `H(0x00 ‖ data)` and an inner node `H(0x01 ‖ left ‖ right)`, so that no leaf can pass for an
//! inner node. A level with an odd number of nodes carries its last one up unpaired.
//!
//! A path is written as text, one step per string: `l:<hex>` when the sibling is on the left,
//! `r:<hex>` when it is on the right, from the leaf up. A batch of one has an empty path.

use sha3::{Digest, Sha3_256};

pub type Hash = [u8; 32];

pub fn leaf(data: &[u8]) -> Hash {
    Sha3_256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Sha3_256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the tree over `leaves` (at least one), and each leaf's path to it.
pub fn root_and_paths(leaves: &[Hash]) -> (Hash, Vec<Vec<String>>) {
    assert!(!leaves.is_empty(), "a tree needs a leaf");
    let mut level = leaves.to_vec();
    let mut positions: Vec<usize> = (0..leaves.len()).collect();
    let mut paths = vec![Vec::new(); leaves.len()];
    while level.len() > 1 {
        for (path, position) in paths.iter_mut().zip(&mut positions) {
            let sibling = *position ^ 1;
            if let Some(hash) = level.get(sibling) {
                let side = if sibling < *position { 'l' } else { 'r' };
                path.push(format!("{side}:{}", hex::encode(hash)));
            }
            *position /= 2;
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node(left, right),
                [last] => *last,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    (level[0], paths)
}

/// The root that `path` leads to from `leaf`; `None` for a step that is not `l:` or `r:` and 32
/// bytes of hex.
pub fn root_from(leaf: Hash, path: &[String]) -> Option<Hash> {
    path.iter().try_fold(leaf, |hash, step| {
        let (side, sibling) = step.split_once(':')?;
        let sibling: Hash = hex::decode(sibling).ok()?.try_into().ok()?;
        match side {
            "l" => Some(node(&sibling, &hash)),
            "r" => Some(node(&hash, &sibling)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_of_every_tree_size_leads_to_the_root_and_no_other_leaf_does() {
        for size in 1..=33 {
            let leaves: Vec<Hash> = (0..size).map(|i: u32| leaf(&i.to_le_bytes())).collect();
            let (root, paths) = root_and_paths(&leaves);
            assert_eq!(paths.len(), size as usize);
            for (i, path) in paths.iter().enumerate() {
                assert_eq!(root_from(leaves[i], path), Some(root), "leaf {i} of {size}");
                assert!(path.len() <= 6, "a path grows with the log of the size");
                let other = leaf(b"not in the tree");
                assert_ne!(root_from(other, path), Some(root));
            }
        }
        let one = [leaf(b"alone")];
        assert_eq!(root_and_paths(&one), (one[0], vec![vec![]]));
    }

    #[test]
    fn an_altered_path_leads_elsewhere_or_nowhere() {
        let leaves: Vec<Hash> = (0..5u8).map(|i| leaf(&[i])).collect();
        let (root, paths) = root_and_paths(&leaves);
        let path = &paths[2];
        let flipped: Vec<String> = path
            .iter()
            .map(|s| match s.split_once(':') {
                Some(("l", h)) => format!("r:{h}"),
                Some((_, h)) => format!("l:{h}"),
                None => unreachable!(),
            })
            .collect();
        assert_ne!(root_from(leaves[2], &flipped), Some(root));
        assert_ne!(root_from(leaves[2], &path[1..]), Some(root));
        assert_eq!(root_from(leaves[2], &["x:00".to_owned()]), None);
        assert_eq!(root_from(leaves[2], &["l:abcd".to_owned()]), None);
        // A leaf's hash is never an inner node's: the two inner children of the root do not
        // make a leaf that proves itself with an empty path.
        assert_ne!(root_from(leaf(&[0]), &[]), Some(root));
    }
}
