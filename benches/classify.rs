//! Classification cost against 10 and 1,000 compiled `[[actions]]` rules
//! (each with a host glob and a path glob), for a request that matches one
//! rule and one that matches none.
//!
//! `cargo bench --bench classify`

use divan::{black_box, Bencher};
use http::Method;
use pacer::config::ActionRule;
use pacer::policy::classify::{Classifier, RequestShape};

fn main() {
    divan::main();
}

fn rules(n: usize) -> Classifier {
    let rules: Vec<ActionRule> = (0..n)
        .map(|i| ActionRule {
            name: format!("action{i}"),
            methods: (i % 2 == 0).then(|| vec![Method::GET, Method::POST]),
            hosts: Some(vec![
                format!("*.site{i}.example"),
                format!("api{i}.example.com"),
            ]),
            paths: Some(vec![format!("/v{i}/messages/*")]),
        })
        .collect();
    match Classifier::new(&rules) {
        Ok(classifier) => classifier,
        Err(err) => panic!("bench rules: {err}"),
    }
}

#[divan::bench(args = [10, 1000])]
fn matching_one_rule(bencher: Bencher, n: usize) {
    let classifier = rules(n);
    let host = format!("www.site{}.example", n / 2);
    let path = format!("/v{}/messages/123", n / 2);
    bencher.bench_local(|| {
        let shape = RequestShape {
            method: &Method::GET,
            host: black_box(&host),
            path: Some(black_box(&path)),
        };
        classifier.classify(shape)
    });
}

#[divan::bench(args = [10, 1000])]
fn matching_nothing(bencher: Bencher, n: usize) {
    let classifier = rules(n);
    bencher.bench_local(|| {
        let shape = RequestShape {
            method: &Method::GET,
            host: black_box("unrelated.test"),
            path: Some(black_box("/nothing/here")),
        };
        classifier.classify(shape)
    });
}
