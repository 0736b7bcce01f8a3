//! Property tests: whatever a client sends, the rules never panic (a panic
//! in the component is a trap: `policy-failed` for every such request) and
//! every request answers the way PROTOCOL.md promises: with a `ref`, exactly
//! one answer echoing it (an `ack` or an `error`, or the `members`,
//! `online` or `history` frame that is the answer itself); every frame they
//! send is valid JSON.

use guest_logic::{Action, Frame, HistoryPage, Incoming, Registry, on_message};
use proptest::prelude::*;
use serde_json::Value;

/// A registry where the sender is in `lobby` only.
struct Reg;

impl Registry for Reg {
    fn in_room(&self, id: &str, room: &str) -> bool {
        id == "alice" && room == "lobby"
    }

    fn members(&self, room: &str, _cap: usize) -> (Vec<String>, usize) {
        if room == "lobby" {
            (vec!["alice".to_owned()], 1)
        } else {
            (Vec::new(), 0)
        }
    }

    fn is_online(&self, id: &str) -> bool {
        id == "alice"
    }

    fn history(&self, _room: &str, _before: Option<u64>, _limit: u32) -> HistoryPage {
        HistoryPage {
            epoch: "e".to_owned(),
            messages: vec![
                r#"{"type":"room","room":"lobby","from":"alice","data":1,"offset":1}"#.to_owned(),
            ],
        }
    }
}

fn frames(actions: &[Action]) -> Vec<&Frame> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Reply(f)
            | Action::SendRoom { frame: f, .. }
            | Action::Broadcast { frame: f, .. } => {
                vec![f]
            }
            Action::Send {
                frame,
                on_sent,
                on_closed,
                on_held,
                on_stored,
                ..
            } => std::iter::once(frame)
                .chain(on_sent.iter())
                .chain(on_closed.iter())
                .chain(on_held.iter())
                .chain(on_stored.iter())
                .collect(),
            Action::Join { on_joined, .. } => on_joined.iter().collect(),
            _ => vec![],
        })
        .collect()
}

/// Every frame is a JSON object with a string `type`.
fn all_json(actions: &[Action]) -> Result<(), TestCaseError> {
    for f in frames(actions) {
        let text = f
            .as_text()
            .ok_or_else(|| TestCaseError::fail("binary frame"))?;
        let v: Value =
            serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(v["type"].is_string(), "{}", text);
    }
    Ok(())
}

/// Requests that are almost right: a known type with fields of any shape.
fn near_requests() -> impl Strategy<Value = String> {
    let types = prop::sample::select(vec![
        "join",
        "leave",
        "room",
        "broadcast",
        "notice",
        "ping",
        "members",
        "online",
        "dance",
        "",
    ]);
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        ".{0,80}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just("{\"a\":[1,2,{}]}".to_owned()),
        Just("[]".to_owned()),
        Just("\"lobby\"".to_owned()),
        Just("\"alice\"".to_owned()),
        Just("[\"alice\",\"bob\",\"alice\"]".to_owned()),
        Just("[1]".to_owned()),
    ];
    let fields = prop::collection::vec(
        (
            prop::sample::select(vec!["room", "to", "data", "ref", "ids", "x"]),
            value,
        ),
        0..6,
    );
    (types, fields).prop_map(|(t, fields)| {
        let mut parts = vec![format!("\"type\":\"{t}\"")];
        // Each key once: with duplicates, which one counts is the parser's
        // choice, not a property.
        let mut seen = std::collections::HashSet::new();
        parts.extend(
            fields
                .into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| format!("\"{k}\":{v}")),
        );
        format!("{{{}}}", parts.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_gets_an_answer_and_no_panic(text in ".{0,300}") {
        let actions = on_message(&Reg, "alice", Incoming::Text(&text));
        all_json(&actions)?;
    }

    #[test]
    fn any_bytes_get_bad_request(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let actions = on_message(&Reg, "alice", Incoming::Binary(&bytes));
        prop_assert_eq!(actions.len(), 1);
        all_json(&actions)?;
    }

    #[test]
    fn a_request_with_a_ref_gets_exactly_one_answer(text in near_requests()) {
        let actions = on_message(&Reg, "alice", Incoming::Text(&text));
        all_json(&actions)?;
        let parsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return Ok(()),
        };
        let r = &parsed["ref"];
        if !(r.is_string() || r.is_number()) {
            return Ok(());
        }
        // Answers to the sender: replies, plus a send's on_sent/on_closed
        // (exactly one of those reaches it; on_held and on_stored replace
        // on_sent), plus a join's on_joined.
        let mut answers = 0;
        for a in &actions {
            let to_sender: Vec<&Frame> = match a {
                Action::Reply(f) => vec![f],
                Action::Send { on_sent, on_closed, on_held, on_stored, .. } => {
                    prop_assert_eq!(on_sent.is_some(), on_closed.is_some());
                    prop_assert_eq!(on_sent.is_some(), on_held.is_some());
                    prop_assert_eq!(on_sent.is_some(), on_stored.is_some());
                    on_sent.iter().collect()
                }
                Action::Join { on_joined, .. } => on_joined.iter().collect(),
                _ => vec![],
            };
            for f in to_sender {
                let v: Value = serde_json::from_str(f.as_text().unwrap_or("")).unwrap_or(Value::Null);
                if ["ack", "error", "members", "online", "history"].contains(&v["type"].as_str().unwrap_or("")) {
                    prop_assert_eq!(&v["ref"], r, "{}", text);
                    answers += 1;
                }
            }
        }
        prop_assert_eq!(answers, 1, "{} -> {:?}", text, actions);
    }
}
