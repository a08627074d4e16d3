//! A repeated lookup is answered from memory, and counted as such. Alone in
//! its test binary: the counters are process-wide, so no other test may
//! look anything up meanwhile.

use std::time::Duration;

use switchboard_testkit::{spawn_app, within};

/// The customers-by-phone cache's (hits, misses) so far.
async fn counts(app: &switchboard_testkit::TestApp) -> (f64, f64) {
    let text = app.metrics().await;
    let sum = |result: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("cache_requests_total{")
                    && l.contains(r#"cache="customers_by_phone""#)
                    && l.contains(&format!(r#"result="{result}""#))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (sum("hit"), sum("miss"))
}

async fn look_up_ada(app: &switchboard_testkit::TestApp) {
    let page = app.get_ok("/v1/customers?phone=%2B12025550188", &app.a.token);
    let page = page.await;
    assert_eq!(page["data"][0]["name"], "Ada", "{page}");
}

#[tokio::test]
async fn repeated_lookups_are_answered_from_the_cache_and_counted() {
    let app = spawn_app().await;
    app.customer_with_phone(&app.a.token, "Ada", "+12025550188")
        .await;
    // The cache starts once its listener is connected, and the creation's
    // own notification may drop a first fill: wait for one hit.
    let (start, _) = counts(&app).await;
    within(Duration::from_secs(5), "a first cache hit", || async {
        look_up_ada(&app).await;
        (counts(&app).await.0 > start).then_some(())
    })
    .await;
    let (hits, misses) = counts(&app).await;
    for _ in 0..5 {
        look_up_ada(&app).await;
    }
    let (hits_after, misses_after) = counts(&app).await;
    assert_eq!(hits_after - hits, 5.0, "every repeated lookup hits");
    assert_eq!(misses_after, misses, "and none reads the database");
}
