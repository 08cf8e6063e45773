//! Racing refreshes of one token: exactly one wins.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let s = std::sync::Arc::new(TestServer::start().await);
    s.create_user("racer", "pw").await;
    for round in 0..5 {
        let (refresh, _) = s.login("racer", "pw").await;
        let attempts = (0..24).map(|_| {
            let (s, refresh) = (s.clone(), refresh.clone());
            tokio::spawn(async move {
                reply(
                    s.post("/api/token/refresh/", json!({"refresh": refresh}))
                        .await,
                )
                .await
            })
        });
        let mut outcomes = Vec::new();
        for attempt in attempts.collect::<Vec<_>>() {
            outcomes.push(attempt.await.unwrap());
        }
        let winners = outcomes.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        let blacklisted = token_not_valid("Token is blacklisted");
        for (status, body) in outcomes.iter().filter(|(status, _)| *status != 200) {
            assert_eq!((*status, body), (401, &blacklisted), "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_blacklisting_and_refreshing_never_both_succeed() {
    let s = std::sync::Arc::new(TestServer::start().await);
    s.create_user("racer2", "pw").await;
    for _ in 0..10 {
        let (refresh, _) = s.login("racer2", "pw").await;
        let (a, b) = {
            let (s1, s2) = (s.clone(), s.clone());
            let (r1, r2) = (refresh.clone(), refresh.clone());
            tokio::join!(
                tokio::spawn(async move {
                    s1.post("/api/token/refresh/", json!({"refresh": r1}))
                        .await
                        .status()
                }),
                tokio::spawn(async move {
                    s2.post("/api/token/blacklist/", json!({"refresh": r2}))
                        .await
                        .status()
                }),
            )
        };
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            (a == 200) != (b == 200),
            "exactly one of refresh ({a}) and blacklist ({b}) succeeds"
        );
    }
}
