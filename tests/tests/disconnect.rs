//! Leaving every room when a connection ends is the host's job: it cannot
//! fail with the policy's call, whatever the number of rooms, and it cannot
//! race with a new connection of the same id.

use std::collections::HashSet;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

fn ack(r: impl Into<Value>) -> Value {
    json!({"type": "ack", "ref": r.into()})
}

/// `c` joins each room with ref = its index.
async fn join_all(c: &mut Client, id: &str, rooms: &[String]) -> Result<()> {
    for (i, room) in rooms.iter().enumerate() {
        c.join_room(id, room, i).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_client_in_300_rooms_that_disconnects_is_heard_leaving_every_one() -> Result<()> {
    let mut c = without_rate_limits(tolerant_config());
    c.limits.max_rooms_per_id = 400;
    // The default per-call cap: two actions per room would not fit in it.
    assert_eq!(c.policy_limits.max_actions, 256);
    let server = TestServer::start(c).await?;
    let rooms: Vec<String> = (0..300).map(|i| format!("room-{i}")).collect();
    let mut watcher = server.join("watcher").await?;
    join_all(&mut watcher, "watcher", &rooms).await?;
    let mut alice = server.join("alice").await?;
    join_all(&mut alice, "alice", &rooms).await?;
    let heard_joined = watcher.drain().await?;
    assert_eq!(heard_joined.len(), 300);

    alice.close().await?;
    let mut left = Vec::new();
    while left.len() < 300 {
        let v = watcher.recv_json().await?;
        assert_eq!(v["type"], "left", "{v}");
        assert_eq!(v["id"], "alice", "{v}");
        left.push(v["room"].as_str().unwrap_or_default().to_owned());
    }
    left.sort();
    let mut expected = rooms.clone();
    expected.sort();
    assert_eq!(left, expected);
    watcher.expect_idle().await?;
    assert!(server.registry.rooms_of("alice").is_empty());
    for room in &rooms {
        assert_eq!(server.registry.room_members(room), vec!["watcher"]);
    }
    drop(watcher);
    server.shutdown().await
}

/// `joined` or `left` of anyone in the room.
fn is_membership(v: &Value) -> bool {
    matches!(v["type"].as_str(), Some("joined" | "left"))
}

/// The reconnect race: the old connection's departure must never take a
/// new connection of the same id out of a room it was just acked into, and
/// the room must see `left`/`joined` of that id strictly alternate. Many
/// ids leave and come back at once, so departures and joins interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_and_joining_at_once_always_stays_in_the_room() -> Result<()> {
    const IDS: usize = 24;
    let server = TestServer::start(tolerant_config()).await?;
    let room = "lobby";
    let mut watcher = server.join("watcher").await?;
    watcher.join_room("watcher", room, "w").await?;
    let ids: Vec<String> = (0..IDS).map(|i| format!("a{i}")).collect();
    let mut clients = Vec::new();
    for id in &ids {
        let mut c = server.join(id).await?;
        c.join_room(id, room, "first").await?;
        clients.push(c);
    }
    watcher.drain().await?;

    // From the watcher's side: which ids are in the room?
    let mut inside: HashSet<String> = ids.iter().cloned().collect();
    for round in 0..25 {
        // Leave (a clean close, or a drop without a close frame: a phone
        // losing its network), then come straight back and join while the
        // server is still handling the departure.
        let server = &server;
        let rejoined = clients.drain(..).zip(&ids).map(|(c, id)| async move {
            // The new connection is open before the old one goes, and its
            // upgrade and its join leave in one write right after: the
            // server registers it and handles the join while it may still
            // be handling the old connection's departure.
            let tcp = tokio::net::TcpStream::connect(server.addr).await?;
            if round % 2 == 0 {
                c.close().await?;
            } else {
                drop(c);
            }
            let join = json!({"type": "join", "room": room, "ref": round}).to_string();
            let mut c = server.pipelined(tcp, &format!("/ws/{id}"), &join).await?;
            let welcome = c.recv_json().await?;
            assert_eq!(welcome, json!({"type": "welcome", "id": id}));
            // Others in the room come and go meanwhile: skip their news.
            loop {
                let v = c.recv_json().await?;
                if v == ack(round) {
                    return anyhow::Ok(c);
                }
                assert!(is_membership(&v), "{id}: {v}");
            }
        });
        clients = futures_util::future::try_join_all(rejoined).await?;
        // Everything queued for the watcher before its own ping's answer.
        for v in watcher.drain().await? {
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            match v["type"].as_str() {
                Some("left") if inside.remove(&id) => {}
                Some("joined") if inside.insert(id.clone()) => {}
                _ => bail!("round {round}: {v} while inside={inside:?}"),
            }
        }
        assert_eq!(
            inside.len(),
            IDS,
            "round {round}: the room last heard some leave"
        );
        // The acked joins hold: a message to the room reaches every one.
        watcher
            .send_json(json!({"type": "room", "room": room, "data": round, "ref": "m"}))
            .await?;
        assert_eq!(watcher.recv_json().await?, ack("m"));
        for (c, id) in clients.iter_mut().zip(&ids) {
            let mut got = c.recv_json().await?;
            while is_membership(&got) {
                got = c.recv_json().await?;
            }
            assert_eq!(got["type"], "room", "round {round}, {id}: {got}");
            assert_eq!(got["data"], round, "round {round}, {id}: {got}");
            assert!(server.registry.in_room(id, room), "round {round}, {id}");
        }
    }
    drop((clients, watcher));
    server.shutdown().await
}
