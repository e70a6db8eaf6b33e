//! A first end-to-end check: two users meet in a room and chat.

use roomcast_tests::TestServer;
use serde_json::json;

#[tokio::test]
async fn two_users_join_and_chat() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let list = alice.join("lobby").await;
    assert_eq!(list["count"], 1);
    let list = bob.join("lobby").await;
    assert_eq!(list["count"], 2);
    let joined = alice.expect("user_join").await;
    assert_eq!(joined["user"]["userId"], "bob");
    bob.send(json!({"type":"chat","room":"lobby","content":"hi","id":1}))
        .await;
    let own = bob.expect("chat").await;
    let reply = bob.expect("reply").await;
    assert_eq!(reply["id"], 1);
    assert_eq!(own["id"], reply["data"]["id"]);
    for client in [&mut alice] {
        let chat = client.expect("chat").await;
        assert_eq!(chat["message"], "hi");
        assert_eq!(chat["from"]["userId"], "bob");
        assert_eq!(chat["id"], reply["data"]["id"]);
    }
    server.stop().await;
}
