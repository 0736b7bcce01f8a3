//! This node's id: given with `--node-id`, else made at random when the
//! config is made (at start). It exists in memory mode too, so an operator
//! always finds the same name in the start line and `/healthz` (and, in a
//! cluster, in Redis).

use std::fmt;
use std::sync::Arc;

/// The longest node id: it goes into Redis keys and every log line.
const MAX_LEN: usize = 64;

/// A node's id: 1-64 of `A-Z a-z 0-9 _ . -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    /// The id itself.
    id: Arc<str>,
    /// Given by the operator, not made at start: only a given id is a
    /// setting (`--help` and the settings tests show no random default).
    given: bool,
}

impl NodeId {
    /// A fresh random id (8 characters of `a-z 2-7`, 40 bits): two nodes,
    /// or one node's two runs, get different ones.
    pub fn random() -> NodeId {
        NodeId {
            id: crate::store::token::new_epoch(),
            given: false,
        }
    }

    /// `text`, if it is a valid id; the error names the setting.
    pub fn parse(text: &str) -> Result<NodeId, String> {
        let valid = (1..=MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(format!(
                "the node id (--node-id, [cluster] node_id) must be 1-{MAX_LEN} of A-Z a-z 0-9 _ . -, not {text:?}"
            ));
        }
        Ok(NodeId {
            id: text.into(),
            given: true,
        })
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether the operator chose it (else it was made at start).
    pub fn is_given(&self) -> bool {
        self.given
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_differ_and_are_valid_ids() {
        let (a, b) = (NodeId::random(), NodeId::random());
        assert_ne!(a, b);
        assert!(!a.is_given());
        let again = NodeId::parse(a.as_str()).expect("a made id is a valid id");
        assert_eq!(again.as_str(), a.as_str());
        assert!(again.is_given());
    }

    #[test]
    fn ids_are_checked() {
        for good in ["n1", "node-a.eu_1", &"x".repeat(64)] {
            assert_eq!(
                NodeId::parse(good).map(|n| n.to_string()),
                Ok(good.to_owned())
            );
        }
        for bad in ["", "a b", "a:b", "ünï", &"x".repeat(65)] {
            let err = NodeId::parse(bad).unwrap_err();
            assert!(err.contains("--node-id"), "{err}");
        }
    }
}
