//! Classification: method, host and path rules, globs, tunnels, 1,000 rules.
use super::*;

fn rule(
    name: &str,
    methods: Option<&[&str]>,
    hosts: Option<&[&str]>,
    paths: Option<&[&str]>,
) -> ActionRule {
    let strings = |list: Option<&[&str]>| list.map(|l| l.iter().map(|s| s.to_string()).collect());
    ActionRule {
        name: name.into(),
        methods: methods.map(|l| l.iter().map(|m| m.parse().expect("method")).collect()),
        hosts: strings(hosts),
        paths: strings(paths),
    }
}

fn names(classifier: &Classifier, method: &str, host: &str, path: Option<&str>) -> Vec<String> {
    let method: Method = method.parse().expect("method");
    let shape = RequestShape {
        method: &method,
        host,
        path,
    };
    classifier
        .classify(shape)
        .iter()
        .map(|id| classifier.name(*id).to_owned())
        .collect()
}

fn classifier() -> Classifier {
    Classifier::new(&[
        rule(
            "send",
            Some(&["POST"]),
            Some(&["api.example.com"]),
            Some(&["/v1/messages", "/v1/messages/*"]),
        ),
        rule("profiles", None, Some(&["*.example.com"]), Some(&["/in/*"])),
        rule("anything_on_example", None, Some(&["*.example.com"]), None),
        rule("searches", Some(&["GET"]), None, Some(&["/search*"])),
        rule("literal", None, None, Some(&["/a?b[c]"])),
    ])
    .expect("rules compile")
}

#[test]
fn method_host_and_path_must_all_match() {
    let c = classifier();
    assert_eq!(
        names(&c, "POST", "api.example.com", Some("/v1/messages")),
        ["send", "anything_on_example"]
    );
    assert_eq!(
        names(&c, "POST", "api.example.com", Some("/v1/messages/42/x")),
        ["send", "anything_on_example"]
    );
    assert_eq!(
        names(&c, "GET", "api.example.com", Some("/v1/messages")),
        ["anything_on_example"]
    );
    assert_eq!(
        names(&c, "POST", "other.test", Some("/v1/messages")),
        Vec::<String>::new()
    );
}

#[test]
fn hosts_are_case_insensitive_and_star_dot_needs_a_subdomain() {
    let c = classifier();
    assert_eq!(
        names(&c, "GET", "WWW.Example.COM", Some("/in/jane")),
        ["profiles", "anything_on_example"]
    );
    assert_eq!(
        names(&c, "GET", "a.b.example.com", Some("/")),
        ["anything_on_example"]
    );
    assert!(names(&c, "GET", "example.com", Some("/in/jane")).is_empty());
}

#[test]
fn star_crosses_slashes_and_dots_and_other_characters_are_literal() {
    let c = classifier();
    assert_eq!(
        names(&c, "GET", "x.test", Some("/search/deep/er.json")),
        ["searches"]
    );
    assert_eq!(names(&c, "GET", "x.test", Some("/a?b[c]")), ["literal"]);
    assert!(names(&c, "GET", "x.test", Some("/axb[c]")).is_empty());
    assert!(
        names(&c, "GET", "x.test", Some("/Search")).is_empty(),
        "paths are case-sensitive"
    );
}

#[test]
fn an_opaque_tunnel_matches_only_rules_without_paths_or_with_connect() {
    let c = Classifier::new(&[
        rule("any_method_host", None, Some(&["*.example.com"]), None),
        rule("connect_only", Some(&["CONNECT"]), None, None),
        rule("with_path", None, Some(&["*.example.com"]), Some(&["*"])),
        rule("post_only", Some(&["POST"]), Some(&["*.example.com"]), None),
    ])
    .expect("rules");
    assert_eq!(
        names(&c, "CONNECT", "www.example.com", None),
        ["any_method_host", "connect_only"]
    );
}

#[test]
fn a_thousand_rules_classify_correctly() {
    let rules: Vec<ActionRule> = (0..1000)
        .map(|i| {
            let host = format!("*.site{i}.test");
            let path = format!("/p{i}/*");
            rule(
                &format!("a{i}"),
                None,
                Some(&[host.as_str()]),
                Some(&[path.as_str()]),
            )
        })
        .collect();
    let c = Classifier::new(&rules).expect("rules");
    assert_eq!(
        names(&c, "GET", "www.site777.test", Some("/p777/x")),
        ["a777"]
    );
    assert!(names(&c, "GET", "www.site777.test", Some("/p778/x")).is_empty());
    assert_eq!(c.id("a999"), Some(ActionId(999)));
}
