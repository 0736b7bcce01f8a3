//! The moderation layer, natively, against an in-memory store.

use guest_logic::{Action, Frame, MemoryState, State};
use serde_json::{Value, json};

use crate::{Command, USAGE, banned_in_text, check, command, is_muted, valid_id};

/// The single error reply of `actions`, parsed.
fn error(actions: Option<Vec<Action>>) -> Value {
    match actions.as_deref() {
        Some([Action::Reply(Frame::Text(t))]) => {
            let v: Value = serde_json::from_str(t).unwrap();
            assert_eq!(v["type"], "error", "{t}");
            v
        }
        other => panic!("expected one error reply, got {other:?}"),
    }
}

fn room(data: Value, r: i64) -> String {
    json!({"type": "room", "room": "lobby", "data": data, "ref": r}).to_string()
}

#[test]
fn banned_words_are_whole_words_any_case() {
    assert_eq!(banned_in_text("buy SPAM now"), Some("spam"));
    assert_eq!(banned_in_text("Scam!"), Some("scam"));
    assert_eq!(banned_in_text("phishing,spam"), Some("phishing"));
    assert_eq!(banned_in_text("héllo wörld: spam"), Some("spam"));
    assert_eq!(banned_in_text("spammer and scampi"), None);
    assert_eq!(banned_in_text("hello"), None);
    assert_eq!(banned_in_text(""), None);
}

#[test]
fn banned_words_are_found_anywhere_in_data() {
    let state = MemoryState::new();
    for data in [
        json!("spam"),
        json!({"text": "total SCAM"}),
        json!(["ok", {"deep": ["phishing"]}]),
        json!({"spam": 1}),
    ] {
        let v = error(check(&state, "alice", &room(data.clone(), 7)));
        assert_eq!(v["code"], "moderated", "{data}");
        assert_eq!(v["ref"], 7);
    }
    // Escapes are decoded before matching.
    let v = error(check(
        &state,
        "alice",
        r#"{"type":"broadcast","data":"\u0073pam","ref":"x"}"#,
    ));
    assert_eq!(
        v,
        json!({"type": "error", "ref": "x", "code": "moderated",
        "message": "message refused by moderation: `spam` is not allowed"})
    );
    // Numbers, booleans and clean text pass.
    for data in [json!(1), json!(null), json!({"text": "hello"})] {
        assert_eq!(check(&state, "alice", &room(data, 1)), None);
    }
}

#[test]
fn every_message_kind_is_filtered_and_nothing_else() {
    let state = MemoryState::new();
    for text in [
        r#"{"type":"room","room":"r","data":"spam"}"#,
        r#"{"type":"broadcast","data":"spam"}"#,
        r#"{"type":"notice","to":"bob","data":"spam"}"#,
    ] {
        let v = error(check(&state, "alice", text));
        assert_eq!(v["code"], "moderated");
        assert!(v.get("ref").is_none(), "no ref to echo: {v}");
    }
    // Not messages, or not requests the rules would accept: the default
    // rules decide.
    for text in [
        r#"{"type":"join","room":"spam"}"#,
        r#"{"type":"ping","ref":"spam"}"#,
        r#"{"type":"spam"}"#,
        "spam",
        r#"{"type":"room","room":"r","ref":null,"data":"spam"}"#,
    ] {
        assert_eq!(check(&state, "alice", text), None, "{text}");
    }
}

#[test]
fn commands_parse() {
    assert_eq!(command("/mute bob"), Some(Ok(Command::Mute("bob"))));
    assert_eq!(
        command("  /unmute   u.1-x_ "),
        Some(Ok(Command::Unmute("u.1-x_")))
    );
    assert_eq!(command("/mute"), Some(Err(USAGE)));
    assert_eq!(command("/mute a b"), Some(Err(USAGE)));
    assert_eq!(command("/mute b@d"), Some(Err(USAGE)));
    assert_eq!(
        command(&format!("/mute {}", "a".repeat(65))),
        Some(Err(USAGE))
    );
    assert_eq!(command("/muted bob"), None);
    assert_eq!(command("hello /mute bob"), None);
    assert!(valid_id(&"a".repeat(64)));
    assert!(!valid_id(""));
}

#[test]
fn a_moderator_mutes_and_unmutes() {
    let state = MemoryState::new();
    // The command is answered with its ack only: nothing goes to the room.
    assert_eq!(
        check(&state, "mod-ann", &room(json!("/mute alice"), 1)),
        Some(vec![Action::Reply(Frame::Text(
            r#"{"type":"ack","ref":1}"#.into()
        ))])
    );
    assert!(is_muted(&state, "alice"));
    assert_eq!(state.get("muted:alice"), Some(b"1".to_vec()));

    for text in [
        room(json!("hi"), 2),
        json!({"type": "broadcast", "data": "hi", "ref": 2}).to_string(),
        json!({"type": "notice", "to": "bob", "data": "hi", "ref": 2}).to_string(),
    ] {
        let v = error(check(&state, "alice", &text));
        assert_eq!(
            v,
            json!({"type": "error", "ref": 2, "code": "muted",
                   "message": "you are muted by a moderator"})
        );
    }
    // A muted id may still do everything else.
    assert_eq!(
        check(&state, "alice", r#"{"type":"join","room":"r"}"#),
        None
    );
    // Others are not affected.
    assert_eq!(check(&state, "bob", &room(json!("hi"), 3)), None);

    assert_eq!(
        check(&state, "mod-ann", &room(json!("/unmute alice"), 4)).map(|a| a.len()),
        Some(1)
    );
    assert!(!is_muted(&state, "alice"));
    assert_eq!(check(&state, "alice", &room(json!("hi"), 5)), None);
    // Without a ref, a command gets no answer at all.
    assert_eq!(
        check(
            &state,
            "mod-ann",
            r#"{"type":"room","room":"r","data":"/unmute alice"}"#
        ),
        Some(vec![])
    );
    assert!(state.is_empty());
}

#[test]
fn commands_from_others_are_ordinary_messages() {
    let state = MemoryState::new();
    assert_eq!(check(&state, "alice", &room(json!("/mute bob"), 1)), None);
    assert_eq!(
        check(&state, "moderator", &room(json!("/mute bob"), 1)),
        None
    );
    assert!(state.is_empty());
    // And only `room` requests carry commands.
    assert_eq!(
        check(
            &state,
            "mod-ann",
            r#"{"type":"broadcast","data":"/mute bob"}"#
        ),
        None
    );
    assert!(!is_muted(&state, "bob"));
}

#[test]
fn bad_commands_and_a_full_store_are_refused() {
    let state = MemoryState::new();
    let v = error(check(&state, "mod-ann", &room(json!("/mute"), 1)));
    assert_eq!(v["code"], "bad-request");
    assert_eq!(v["message"], USAGE);
    state.set_full(true);
    let v = error(check(&state, "mod-ann", &room(json!("/mute bob"), 2)));
    assert_eq!(v["code"], "state-failed");
    assert_eq!(v["ref"], 2);
    assert!(!is_muted(&state, "bob"));
}

#[test]
fn a_muted_moderator_can_still_command() {
    let state = MemoryState::new();
    state.set("muted:mod-ann", b"1").unwrap();
    assert_eq!(
        check(&state, "mod-ann", &room(json!("/unmute mod-ann"), 1)).map(|a| a.len()),
        Some(1)
    );
    assert!(!is_muted(&state, "mod-ann"));
}
