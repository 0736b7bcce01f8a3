//! Protocol v2, natively: every request, every error code, refs, ordering.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::action::{Action, Frame, Incoming, Position};
use crate::rules::{self, BINARY_MESSAGE, HistoryPage, Registry};

/// An in-memory registry: id -> rooms. Tests mutate it to set the scene.
#[derive(Default)]
struct Reg {
    rooms: RefCell<BTreeMap<String, BTreeSet<String>>>,
    /// Every `in-room` question asked, to check the hot path uses it.
    in_room_calls: RefCell<usize>,
}

impl Reg {
    fn with(memberships: &[(&str, &str)]) -> Reg {
        let reg = Reg::default();
        for (id, room) in memberships {
            reg.rooms
                .borrow_mut()
                .entry(id.to_string())
                .or_default()
                .insert(room.to_string());
        }
        reg
    }
}

impl Registry for Reg {
    fn in_room(&self, id: &str, room: &str) -> bool {
        *self.in_room_calls.borrow_mut() += 1;
        self.rooms
            .borrow()
            .get(id)
            .is_some_and(|r| r.contains(room))
    }

    /// The host picks which members to list; this one, the smallest ids.
    fn members(&self, room: &str, cap: usize) -> (Vec<String>, usize) {
        let mut all: Vec<String> = self
            .rooms
            .borrow()
            .iter()
            .filter(|(_, rooms)| rooms.contains(room))
            .map(|(id, _)| id.clone())
            .collect();
        all.sort();
        let count = all.len();
        all.truncate(cap);
        (all, count)
    }

    /// Online: every id the scene mentions.
    fn is_online(&self, id: &str) -> bool {
        self.rooms.borrow().contains_key(id)
    }

    /// Every room has kept `{"n":1}` … `{"n":5}` at offsets 1-5, epoch `e`.
    fn history(&self, _room: &str, before: Option<u64>, limit: u32) -> HistoryPage {
        let end = before.unwrap_or(6).min(6);
        let start = end.saturating_sub(u64::from(limit)).max(1);
        HistoryPage {
            epoch: s("e"),
            messages: (start..end)
                .map(|n| format!(r#"{{"n":{n},"offset":{n}}}"#))
                .collect(),
        }
    }
}

fn msg(reg: &Reg, sender: &str, text: &str) -> Vec<Action> {
    rules::on_message(reg, sender, Incoming::Text(text))
}

fn text(s: &str) -> Frame {
    Frame::Text(s.to_owned())
}

fn reply(s: &str) -> Action {
    Action::Reply(text(s))
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The single error reply of `actions`, as JSON text.
fn only_error(actions: &[Action]) -> &str {
    match actions {
        [Action::Reply(Frame::Text(t))] => {
            assert!(t.starts_with(r#"{"type":"error""#), "not an error: {t}");
            t
        }
        other => panic!("expected one error reply, got {other:?}"),
    }
}

/// The error's `code` and `message`, and its `ref` if any (raw text).
fn error_parts(t: &str) -> (String, String, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(t).unwrap();
    (
        v["code"].as_str().unwrap().to_owned(),
        v["message"].as_str().unwrap().to_owned(),
        v.get("ref").map(|r| r.to_string()),
    )
}

// ---- connect / disconnect ----

#[test]
fn connect_says_welcome() {
    assert_eq!(
        rules::on_connect("alice", false),
        vec![reply(r#"{"type":"welcome","id":"alice","resumed":false}"#)]
    );
    assert_eq!(
        rules::on_connect("bob", true),
        vec![reply(r#"{"type":"welcome","id":"bob","resumed":true}"#)]
    );
}

#[test]
fn disconnect_leaves_the_rooms_to_the_host() {
    assert_eq!(rules::on_disconnect("a"), vec![]);
}

// ---- join ----

#[test]
fn join_new_member() {
    let reg = Reg::default();
    assert_eq!(
        msg(&reg, "a", r#"{"type":"join","room":"lobby"}"#),
        vec![
            Action::Join {
                id: s("a"),
                room: s("lobby"),
                since: None,
                on_joined: None,
            },
            Action::SendRoom {
                room: s("lobby"),
                frame: text(r#"{"type":"joined","room":"lobby","id":"a"}"#),
                except: None,
                transient: true,
            },
        ]
    );
}

#[test]
fn join_with_ref_acks_through_the_join() {
    let actions = msg(
        &Reg::default(),
        "a",
        r#"{"type":"join","room":"lobby","ref":"j1"}"#,
    );
    assert_eq!(actions.len(), 2);
    assert!(matches!(
        &actions[0],
        Action::Join { on_joined: Some(ack), .. } if *ack == text(r#"{"type":"ack","ref":"j1"}"#)
    ));
    assert!(matches!(actions[1], Action::SendRoom { .. }));
}

#[test]
fn join_with_since_asks_for_a_replay() {
    let actions = msg(
        &Reg::default(),
        "a",
        r#"{"type":"join","room":"lobby","since":{"epoch":"E","offset":41},"ref":1}"#,
    );
    assert!(matches!(
        &actions[0],
        Action::Join { since: Some(Position { epoch, offset: 41 }), .. } if epoch == "E"
    ));
    for bad in [
        r#"{"epoch":"E"}"#,
        r#"{"epoch":1,"offset":1}"#,
        r#"{"epoch":"E","offset":-1}"#,
        r#"{"epoch":"E","offset":1.5}"#,
        r#""E:41""#,
    ] {
        let req = format!(r#"{{"type":"join","room":"lobby","since":{bad}}}"#);
        let (code, _, _) = error_parts(only_error(&msg(&Reg::default(), "a", &req)));
        assert_eq!(code, "bad-request", "{bad}");
    }
}

#[test]
fn join_again_only_acks() {
    let reg = Reg::with(&[("a", "lobby")]);
    assert_eq!(
        msg(&reg, "a", r#"{"type":"join","room":"lobby","ref":7}"#),
        vec![Action::Join {
            id: s("a"),
            room: s("lobby"),
            since: None,
            on_joined: Some(text(r#"{"type":"ack","ref":7}"#)),
        }]
    );
}

#[test]
fn join_room_with_escapes_is_decoded() {
    let actions = msg(
        &Reg::default(),
        "a",
        r#"{"type":"join","room":"caf\u00e9 \"x\""}"#,
    );
    assert_eq!(
        actions[0],
        Action::Join {
            id: s("a"),
            room: s("café \"x\""),
            since: None,
            on_joined: None,
        }
    );
    assert_eq!(
        actions[1],
        Action::SendRoom {
            room: s("café \"x\""),
            frame: text(r#"{"type":"joined","room":"café \"x\"","id":"a"}"#),
            except: None,
            transient: true,
        }
    );
}

#[test]
fn room_field_rules() {
    let reg = Reg::default();
    let bad = "field `room` must be a string of 1-64 characters";
    for (req, message) in [
        (r#"{"type":"join"}"#, "missing field `room`"),
        (r#"{"type":"join","room":""}"#, bad),
        (r#"{"type":"join","room":5}"#, bad),
        (r#"{"type":"join","room":null}"#, bad),
        (r#"{"type":"join","room":["a"]}"#, bad),
        (r#"{"type":"leave","room":{}}"#, bad),
        (r#"{"type":"room","room":true,"data":1}"#, bad),
        (
            r#"{"type":"join","room":"a\nb"}"#,
            "field `room` must not contain control characters",
        ),
        (
            r#"{"type":"join","room":"a\u0000"}"#,
            "field `room` must not contain control characters",
        ),
        (
            r#"{"type":"join","room":"a\u007f"}"#,
            "field `room` must not contain control characters",
        ),
    ] {
        let (code, msg_, r) = error_parts(only_error(&msg(&reg, "a", req)));
        assert_eq!(
            (code.as_str(), msg_.as_str(), r),
            ("bad-request", message, None),
            "{req}"
        );
    }
    // 64 characters (multi-byte ones too) is fine, 65 is not.
    let ok = "é".repeat(64);
    assert_eq!(
        msg(&reg, "a", &format!(r#"{{"type":"join","room":"{ok}"}}"#)).len(),
        2
    );
    let long = "x".repeat(65);
    let (code, m, _) = error_parts(only_error(&msg(
        &reg,
        "a",
        &format!(r#"{{"type":"join","room":"{long}"}}"#),
    )));
    assert_eq!((code.as_str(), m.as_str()), ("bad-request", bad));
    let long = "é".repeat(65);
    let (code, _, _) = error_parts(only_error(&msg(
        &reg,
        "a",
        &format!(r#"{{"type":"join","room":"{long}"}}"#),
    )));
    assert_eq!(code, "bad-request");
}

// ---- leave ----

#[test]
fn leave_member() {
    let reg = Reg::with(&[("a", "lobby")]);
    assert_eq!(
        msg(&reg, "a", r#"{"type":"leave","room":"lobby","ref":"x"}"#),
        vec![
            Action::SendRoom {
                room: s("lobby"),
                frame: text(r#"{"type":"left","room":"lobby","id":"a"}"#),
                except: None,
                transient: true,
            },
            Action::Leave {
                id: s("a"),
                room: s("lobby")
            },
            reply(r#"{"type":"ack","ref":"x"}"#),
        ]
    );
}

#[test]
fn leave_not_member() {
    let reg = Reg::with(&[("b", "lobby")]);
    assert_eq!(
        msg(&reg, "a", r#"{"type":"leave","room":"lobby","ref":3}"#),
        vec![reply(
            r#"{"type":"error","ref":3,"code":"not-in-room","message":"not a member of room `lobby`"}"#
        )]
    );
    assert_eq!(
        msg(&reg, "a", r#"{"type":"leave","room":"lobby"}"#),
        vec![reply(
            r#"{"type":"error","code":"not-in-room","message":"not a member of room `lobby`"}"#
        )]
    );
}

// ---- room ----

#[test]
fn room_message_to_other_members() {
    let reg = Reg::with(&[("a", "lobby")]);
    assert_eq!(
        msg(
            &reg,
            "a",
            r#"{"type":"room","room":"lobby","data":{"text":"hi", "n": 1.50}}"#
        ),
        vec![Action::SendRoom {
            room: s("lobby"),
            frame: text(
                r#"{"type":"room","room":"lobby","from":"a","data":{"text":"hi", "n": 1.50}}"#
            ),
            except: Some(s("a")),
            transient: false,
        }]
    );
    assert_eq!(*reg.in_room_calls.borrow(), 1);
}

#[test]
fn room_message_with_ref_and_null_data() {
    let reg = Reg::with(&[("a", "lobby")]);
    let actions = msg(
        &reg,
        "a",
        r#"{"ref":"m1","data":null,"room":"lobby","type":"room"}"#,
    );
    assert_eq!(
        actions,
        vec![
            Action::SendRoom {
                room: s("lobby"),
                frame: text(r#"{"type":"room","room":"lobby","from":"a","data":null}"#),
                except: Some(s("a")),
                transient: false,
            },
            reply(r#"{"type":"ack","ref":"m1"}"#),
        ]
    );
}

#[test]
fn room_message_not_member() {
    let reg = Reg::with(&[("b", "lobby")]);
    let (code, m, r) = error_parts(only_error(&msg(
        &reg,
        "a",
        r#"{"type":"room","room":"lobby","data":1,"ref":"q"}"#,
    )));
    assert_eq!(
        (code.as_str(), m.as_str(), r.as_deref()),
        ("not-in-room", "not a member of room `lobby`", Some("\"q\""))
    );
}

#[test]
fn room_message_missing_data() {
    let reg = Reg::with(&[("a", "lobby")]);
    assert_eq!(
        msg(&reg, "a", r#"{"type":"room","room":"lobby"}"#),
        vec![reply(
            r#"{"type":"error","code":"bad-request","message":"missing field `data` (any JSON value, null allowed)"}"#
        )]
    );
}

// ---- broadcast ----

#[test]
fn broadcast_to_everyone_else() {
    assert_eq!(
        msg(
            &Reg::default(),
            "a",
            r#"{"type":"broadcast","data":[1,"two",{"3":null}],"ref":-1}"#
        ),
        vec![
            Action::Broadcast {
                frame: text(r#"{"type":"broadcast","from":"a","data":[1,"two",{"3":null}]}"#),
                except: Some(s("a")),
            },
            reply(r#"{"type":"ack","ref":-1}"#),
        ]
    );
}

#[test]
fn broadcast_missing_data() {
    let (code, m, r) = error_parts(only_error(&msg(
        &Reg::default(),
        "a",
        r#"{"type":"broadcast","ref":1}"#,
    )));
    assert_eq!(
        (code.as_str(), m.as_str(), r.as_deref()),
        (
            "bad-request",
            "missing field `data` (any JSON value, null allowed)",
            Some("1")
        )
    );
}

// ---- notice ----

#[test]
fn notice_with_ref_acks_on_sent() {
    assert_eq!(
        msg(
            &Reg::default(),
            "a",
            r#"{"type":"notice","to":"b","data":"psst","ref":"n1"}"#
        ),
        vec![Action::Send {
            to: s("b"),
            frame: text(r#"{"type":"notice","from":"a","data":"psst"}"#),
            on_sent: Some(text(r#"{"type":"ack","ref":"n1"}"#)),
            on_closed: Some(text(
                r#"{"type":"error","ref":"n1","code":"target-closed","message":"`b` is not online"}"#
            )),
            on_held: Some(text(r#"{"type":"ack","ref":"n1","held":true}"#)),
            store: false,
            on_stored: Some(text(r#"{"type":"ack","ref":"n1","stored":true}"#)),
        }]
    );
}

#[test]
fn notice_without_ref_only_errors() {
    assert_eq!(
        msg(
            &Reg::default(),
            "a",
            r#"{"type":"notice","to":"b","data":{}}"#
        ),
        vec![Action::Send {
            to: s("b"),
            frame: text(r#"{"type":"notice","from":"a","data":{}}"#),
            on_sent: None,
            on_closed: Some(text(
                r#"{"type":"error","code":"target-closed","message":"`b` is not online"}"#
            )),
            on_held: None,
            store: false,
            on_stored: None,
        }]
    );
}

#[test]
fn notice_store_is_a_boolean() {
    let actions = msg(
        &Reg::default(),
        "a",
        r#"{"type":"notice","to":"b","data":1,"store":true}"#,
    );
    assert!(matches!(&actions[..], [Action::Send { store: true, .. }]));
    let (code, m, _) = error_parts(only_error(&msg(
        &Reg::default(),
        "a",
        r#"{"type":"notice","to":"b","data":1,"store":"yes"}"#,
    )));
    assert_eq!(
        (code.as_str(), m.as_str()),
        ("bad-request", "field `store` must be true or false")
    );
}

// ---- history ----

#[test]
fn history_for_members_only() {
    let reg = Reg::with(&[("a", "lobby")]);
    assert_eq!(
        msg(
            &reg,
            "a",
            r#"{"type":"history","room":"lobby","limit":2,"ref":9}"#
        ),
        vec![reply(
            r#"{"type":"history","room":"lobby","epoch":"e","messages":[{"n":4,"offset":4},{"n":5,"offset":5}],"ref":9}"#
        )]
    );
    assert_eq!(
        msg(&reg, "a", r#"{"type":"history","room":"lobby","before":2}"#),
        vec![reply(
            r#"{"type":"history","room":"lobby","epoch":"e","messages":[{"n":1,"offset":1}]}"#
        )]
    );
    let (code, _, r) = error_parts(only_error(&msg(
        &reg,
        "b",
        r#"{"type":"history","room":"lobby","ref":1}"#,
    )));
    assert_eq!((code.as_str(), r.as_deref()), ("not-in-room", Some("1")));
    // Past the most one answer holds: that many (page back with `before`).
    let page = msg(
        &reg,
        "a",
        r#"{"type":"history","room":"lobby","limit":1000}"#,
    );
    assert!(
        matches!(&page[..], [Action::Reply(f)] if f.as_text().is_some_and(|t| t.contains(r#"{"n":1,"offset":1}"#))),
        "{page:?}"
    );
    for bad in [
        r#""limit":0"#,
        r#""limit":-3"#,
        r#""limit":"5""#,
        r#""before":-1"#,
    ] {
        let req = format!(r#"{{"type":"history","room":"lobby",{bad}}}"#);
        let (code, _, _) = error_parts(only_error(&msg(&reg, "a", &req)));
        assert_eq!(code, "bad-request", "{bad}");
    }
}

#[test]
fn notice_to_self() {
    let actions = msg(
        &Reg::default(),
        "a",
        r#"{"type":"notice","to":"a","data":1}"#,
    );
    assert!(matches!(&actions[..], [Action::Send { to, .. }] if to == "a"));
}

#[test]
fn notice_field_rules() {
    let reg = Reg::default();
    for (req, message) in [
        (r#"{"type":"notice","data":1}"#, "missing field `to`"),
        (
            r#"{"type":"notice","to":5,"data":1}"#,
            "field `to` must be a string",
        ),
        (
            r#"{"type":"notice","to":null,"data":1}"#,
            "field `to` must be a string",
        ),
        (
            r#"{"type":"notice","to":"b"}"#,
            "missing field `data` (any JSON value, null allowed)",
        ),
        (
            r#"{"type":"notice","to":"no such id!","data":1}"#,
            "field `to` must be an id: 1-64 characters of A-Z a-z 0-9 _ . -",
        ),
        (
            r#"{"type":"notice","to":"","data":1}"#,
            "field `to` must be an id: 1-64 characters of A-Z a-z 0-9 _ . -",
        ),
    ] {
        let (code, m, r) = error_parts(only_error(&msg(&reg, "a", req)));
        assert_eq!(
            (code.as_str(), m.as_str(), r),
            ("bad-request", message, None),
            "{req}"
        );
    }
}

// ---- ping ----

#[test]
fn ping_without_ref() {
    assert_eq!(
        msg(&Reg::default(), "a", r#"{"type":"ping"}"#),
        vec![reply(r#"{"type":"pong"}"#)]
    );
}

#[test]
fn ping_with_ref_pongs_then_acks() {
    assert_eq!(
        msg(&Reg::default(), "a", r#"{"type":"ping","ref":"hb"}"#),
        vec![
            reply(r#"{"type":"pong"}"#),
            reply(r#"{"type":"ack","ref":"hb"}"#)
        ]
    );
}

// ---- refs ----

#[test]
fn refs_are_echoed_byte_for_byte() {
    for r in [
        r#""abc""#,
        r#""""#,
        r#""caf\u00e9 \"q\"""#,
        "0",
        "42",
        "-7",
        "-0",
        "3.14",
        "1.50",
        "1e3",
        "-2.5E-10",
        "12345678901234567890123456789",
    ] {
        let req = format!(r#"{{"type":"ping","ref": {r} }}"#);
        let actions = msg(&Reg::default(), "a", &req);
        assert_eq!(
            actions[1],
            reply(&format!(r#"{{"type":"ack","ref":{r}}}"#)),
            "{req}"
        );
        // In errors too.
        let req = format!(r#"{{"type":"nope","ref":{r}}}"#);
        let t = only_error(&msg(&Reg::default(), "a", &req)).to_owned();
        assert!(
            t.starts_with(&format!(
                r#"{{"type":"error","ref":{r},"code":"unknown-type""#
            )),
            "{t}"
        );
    }
}

#[test]
fn invalid_ref_type_is_bad_request_without_ref() {
    for r in ["null", "true", "false", "[1]", r#"{"a":1}"#] {
        let req = format!(r#"{{"type":"ping","ref":{r}}}"#);
        assert_eq!(
            msg(&Reg::default(), "a", &req),
            vec![reply(
                r#"{"type":"error","code":"bad-request","message":"field `ref` must be a string or a number"}"#
            )],
            "{req}"
        );
    }
}

// ---- type ----

#[test]
fn missing_or_non_string_type() {
    assert_eq!(
        msg(&Reg::default(), "a", r#"{"ref":"r"}"#),
        vec![reply(
            r#"{"type":"error","ref":"r","code":"bad-request","message":"missing field `type`"}"#
        )]
    );
    assert_eq!(
        msg(&Reg::default(), "a", r#"{}"#),
        vec![reply(
            r#"{"type":"error","code":"bad-request","message":"missing field `type`"}"#
        )]
    );
    for t in ["1", "null", "[\"ping\"]", "{}"] {
        let req = format!(r#"{{"type":{t}}}"#);
        assert_eq!(
            msg(&Reg::default(), "a", &req),
            vec![reply(
                r#"{"type":"error","code":"bad-request","message":"field `type` must be a string"}"#
            )],
            "{req}"
        );
    }
}

#[test]
fn unknown_type() {
    assert_eq!(
        msg(&Reg::default(), "a", r#"{"type":"dance","ref":1}"#),
        vec![reply(
            r#"{"type":"error","ref":1,"code":"unknown-type","message":"unknown type `dance`: expected join, leave, room, broadcast, notice, ping, members, online or history"}"#
        )]
    );
    // Case matters.
    let (code, _, _) = error_parts(only_error(&msg(&Reg::default(), "a", r#"{"type":"PING"}"#)));
    assert_eq!(code, "unknown-type");
    // A long type is cut in the message.
    let long = "z".repeat(500);
    let (_, m, _) = error_parts(only_error(&msg(
        &Reg::default(),
        "a",
        &format!(r#"{{"type":"{long}"}}"#),
    )));
    assert!(m.len() < 200, "{m}");
}

#[test]
fn escaped_keys_and_type_are_decoded() {
    assert_eq!(
        msg(&Reg::default(), "a", r#"{"\u0074ype":"p\u0069ng"}"#),
        vec![reply(r#"{"type":"pong"}"#)]
    );
}

#[test]
fn unknown_fields_are_ignored_and_last_duplicate_wins() {
    assert_eq!(
        msg(
            &Reg::default(),
            "a",
            r#"{"type":"join","x":{"deep":[1,2,{"y":null}]},"type":"ping","extra":true}"#
        ),
        vec![reply(r#"{"type":"pong"}"#)]
    );
}

// ---- bad-json / binary ----

#[test]
fn invalid_json() {
    for req in [
        "",
        "{",
        "not json",
        r#"{"type":"ping"} x"#,
        r#"{"type":"ping",}"#,
        "[1,",
    ] {
        let t = only_error(&msg(&Reg::default(), "a", req)).to_owned();
        let (code, m, r) = error_parts(&t);
        assert_eq!((code.as_str(), r), ("bad-json", None), "{req}");
        assert!(
            m.starts_with("invalid JSON: ") && m.contains("line 1 column"),
            "{req}: {m}"
        );
    }
    let (_, m, _) = error_parts(only_error(&msg(&Reg::default(), "a", "{")));
    assert_eq!(
        m,
        "invalid JSON: EOF while parsing an object at line 1 column 1"
    );
}

#[test]
fn json_that_is_not_an_object() {
    for (req, what) in [
        ("[1,2]", "an array"),
        (r#" "ping""#, "a string"),
        ("42", "a number"),
        ("-1", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        assert_eq!(
            msg(&Reg::default(), "a", req),
            vec![reply(&format!(
                r#"{{"type":"error","code":"bad-json","message":"expected a JSON object, got {what}"}}"#
            ))],
            "{req}"
        );
    }
}

#[test]
fn binary_frame() {
    assert_eq!(
        rules::on_message(
            &Reg::default(),
            "a",
            Incoming::Binary(br#"{"type":"ping"}"#)
        ),
        vec![reply(&format!(
            r#"{{"type":"error","code":"bad-request","message":"{BINARY_MESSAGE}"}}"#
        ))]
    );
    assert_eq!(
        BINARY_MESSAGE,
        "binary frames are not supported: send JSON text frames"
    );
}

#[test]
fn deep_nesting_passes_through_without_recursion() {
    // serde_json skips and captures raw values without recursing, so a deeply
    // nested `data` (or unknown field) is forwarded as is, never a stack overflow.
    let open = "[".repeat(100_000);
    let close = "]".repeat(100_000);
    let req = format!(r#"{{"type":"broadcast","x":{open}{close},"data":{open}{close}}}"#);
    let actions = msg(&Reg::default(), "a", &req);
    let Action::Broadcast { frame, .. } = &actions[0] else {
        panic!("not a broadcast")
    };
    assert!(
        frame
            .as_text()
            .unwrap()
            .ends_with(&format!("{open}{close}}}"))
    );
    // Not an object, deeply nested: still just bad-json.
    let (code, m, _) = error_parts(only_error(&msg(
        &Reg::default(),
        "a",
        &format!("{open}{close}"),
    )));
    assert_eq!(
        (code.as_str(), m.as_str()),
        ("bad-json", "expected a JSON object, got an array")
    );
}

#[test]
fn ids_and_rooms_are_json_escaped_in_frames() {
    let reg = Reg::with(&[("a", "<\"\\>")]);
    let actions = msg(&reg, "a", r#"{"type":"room","room":"<\"\\>","data":0}"#);
    let Action::SendRoom { frame, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    let v: serde_json::Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
    assert_eq!(v["room"], "<\"\\>");
}

#[test]
fn documented_error_examples() {
    // The examples in docs/PROTOCOL.md, "Errors".
    let reg = Reg::default();
    for (req, answer) in [
        (
            "hello",
            r#"{"type":"error","code":"bad-json","message":"invalid JSON: expected value at line 1 column 1"}"#,
        ),
        (
            "[1,2,3]",
            r#"{"type":"error","code":"bad-json","message":"expected a JSON object, got an array"}"#,
        ),
        (
            r#"{"room":"lobby","ref":"x"}"#,
            r#"{"type":"error","ref":"x","code":"bad-request","message":"missing field `type`"}"#,
        ),
        (
            r#"{"type":"ping","ref":null}"#,
            r#"{"type":"error","code":"bad-request","message":"field `ref` must be a string or a number"}"#,
        ),
        (
            r#"{"type":"join","room":"","ref":9}"#,
            r#"{"type":"error","ref":9,"code":"bad-request","message":"field `room` must be a string of 1-64 characters"}"#,
        ),
        (
            r#"{"type":"broadcast","ref":10}"#,
            r#"{"type":"error","ref":10,"code":"bad-request","message":"missing field `data` (any JSON value, null allowed)"}"#,
        ),
        (
            r#"{"type":"dance","ref":11}"#,
            r#"{"type":"error","ref":11,"code":"unknown-type","message":"unknown type `dance`: expected join, leave, room, broadcast, notice, ping, members, online or history"}"#,
        ),
    ] {
        assert_eq!(msg(&reg, "alice", req), vec![reply(answer)], "{req}");
    }
}

#[test]
fn members_lists_the_room_sorted_with_its_count_and_the_ref() {
    let reg = Reg::with(&[
        ("c", "lobby"),
        ("a", "lobby"),
        ("b", "lobby"),
        ("z", "other"),
    ]);
    assert_eq!(
        msg(&reg, "a", r#"{"type":"members","room":"lobby","ref":7}"#),
        vec![reply(
            r#"{"type":"members","room":"lobby","ids":["a","b","c"],"count":3,"ref":7}"#
        )]
    );
    // Without a ref, the same answer without one.
    assert_eq!(
        msg(&reg, "z", r#"{"type":"members","room":"other"}"#),
        vec![reply(
            r#"{"type":"members","room":"other","ids":["z"],"count":1}"#
        )]
    );
}

#[test]
fn members_is_for_members_only() {
    let reg = Reg::with(&[("a", "lobby")]);
    let actions = msg(&reg, "b", r#"{"type":"members","room":"lobby","ref":1}"#);
    assert_eq!(
        only_error(&actions),
        r#"{"type":"error","ref":1,"code":"not-in-room","message":"not a member of room `lobby`"}"#
    );
    let actions = msg(&reg, "a", r#"{"type":"members","ref":2}"#);
    assert_eq!(
        only_error(&actions),
        r#"{"type":"error","ref":2,"code":"bad-request","message":"missing field `room`"}"#
    );
}

#[test]
fn members_of_a_large_room_lists_the_first_thousand_and_counts_all() {
    let ids: Vec<String> = (0..2500).map(|i| format!("u{i:05}")).collect();
    let memberships: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "big")).collect();
    let reg = Reg::with(&memberships);
    let actions = msg(&reg, "u00000", r#"{"type":"members","room":"big"}"#);
    let [Action::Reply(Frame::Text(t))] = actions.as_slice() else {
        panic!("one reply: {actions:?}");
    };
    let v: serde_json::Value = serde_json::from_str(t).unwrap();
    assert_eq!(v["count"], 2500);
    let listed: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = ids[..rules::MAX_MEMBER_IDS]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn online_answers_which_ids_are_online_in_the_order_asked() {
    let reg = Reg::with(&[("a", "lobby"), ("c", "x")]);
    assert_eq!(
        msg(
            &reg,
            "a",
            r#"{"type":"online","ids":["c","b","a","c","no such id!"],"ref":"q"}"#
        ),
        vec![reply(r#"{"type":"online","ids":["c","a"],"ref":"q"}"#)]
    );
    assert_eq!(
        msg(&reg, "a", r#"{"type":"online","ids":[]}"#),
        vec![reply(r#"{"type":"online","ids":[]}"#)]
    );
}

#[test]
fn online_wants_an_array_of_at_most_a_hundred_strings() {
    let reg = Reg::default();
    let bad = r#"{"type":"error","ref":1,"code":"bad-request","message":"field `ids` must be an array of at most 100 strings"}"#;
    for ids in [r#""a""#, "[1]", r#"["a",null]"#, "{}"] {
        let request = format!(r#"{{"type":"online","ids":{ids},"ref":1}}"#);
        assert_eq!(only_error(&msg(&reg, "a", &request)), bad, "{request}");
    }
    let many: Vec<String> = (0..101).map(|i| format!("\"u{i}\"")).collect();
    let request = format!(r#"{{"type":"online","ids":[{}],"ref":1}}"#, many.join(","));
    assert_eq!(only_error(&msg(&reg, "a", &request)), bad);
    let hundred = &many[..100];
    let request = format!(r#"{{"type":"online","ids":[{}]}}"#, hundred.join(","));
    assert_eq!(
        msg(&reg, "a", &request),
        vec![reply(r#"{"type":"online","ids":[]}"#)]
    );
    assert_eq!(
        only_error(&msg(&reg, "a", r#"{"type":"online","ref":1}"#)),
        r#"{"type":"error","ref":1,"code":"bad-request","message":"missing field `ids`"}"#
    );
}
