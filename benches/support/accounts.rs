//! Config texts of many accounts for the benches.

/// `head` (the config without accounts) followed by `accounts` accounts
/// `a0`, `a1`, ... with the secret `s`, on the default policy.
pub fn config_with_accounts(head: &str, accounts: usize) -> String {
    let mut toml = String::from(head);
    for account in 0..accounts {
        toml.push_str(&format!(
            "\n[[accounts]]\nid = \"a{account}\"\nsecret = \"s\"\n"
        ));
    }
    toml
}
