//! Classification (SPEC section 4): a request's method, host and path to the
//! set of actions whose `[[actions]]` rule matches, plus the built-in `all`.
//!
//! Rules are compiled once: every host glob of every rule goes into one
//! [`GlobSet`], every path glob into another, and each rule becomes a bit.
//! A request is matched with two glob-set lookups and a few word-wide ANDs,
//! whatever the number of rules. Hosts match case-insensitively by
//! lower-casing both the globs (at compile time) and the host (when it has
//! upper case at all): globset's fast literal, prefix and suffix strategies
//! only serve case-sensitive globs.
//!
//! Globs follow SPEC section 2: `*` matches any run of characters, dots and
//! slashes included; every other character is literal.

use std::cell::RefCell;
use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use http::Method;
use smallvec::SmallVec;

use self::bits::Bits;

use crate::config::{globset_pattern, ActionRule};

mod bits;
pub mod path;

/// The index of an action in `[[actions]]` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u16);

/// The actions a request matched (the built-in `all` is implicit).
pub type ActionSet = SmallVec<[ActionId; 4]>;

/// What is classified: a request, or an opaque tunnel (no path).
#[derive(Debug, Clone, Copy)]
pub struct RequestShape<'a> {
    /// The method (`CONNECT` for tunnels).
    pub method: &'a Method,
    /// The host, without port or brackets.
    pub host: &'a str,
    /// The path without query, or `None` for an opaque tunnel.
    pub path: Option<&'a str>,
}

/// The compiled `[[actions]]` rules.
#[derive(Debug)]
pub struct Classifier {
    names: Vec<String>,
    /// The same names, shared with compiled policies and usage counts.
    action_names: Arc<[Arc<str>]>,
    hosts: GlobSet,
    host_rule: Vec<u16>,
    host_any: Bits,
    paths: GlobSet,
    path_rule: Vec<u16>,
    path_any: Bits,
    methods: Vec<(Method, Bits)>,
    method_any: Bits,
}

/// A compile error: the rule and the glob that did not build.
#[derive(Debug, thiserror::Error)]
#[error("action `{action}`: bad glob `{glob}`: {reason}")]
pub struct ClassifyError {
    action: String,
    glob: String,
    reason: String,
}

impl Classifier {
    /// Compiles `rules`.
    pub fn new(rules: &[ActionRule]) -> Result<Self, ClassifyError> {
        let words = rules.len().div_ceil(64);
        let mut hosts = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let (mut host_rule, mut path_rule) = (Vec::new(), Vec::new());
        let (mut host_any, mut path_any) = (Bits::new(words), Bits::new(words));
        let mut method_any = Bits::new(words);
        let mut methods: Vec<(Method, Bits)> = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            match &rule.hosts {
                None => host_any.set(index),
                Some(globs) => {
                    for glob in globs {
                        hosts.add(compile(rule, &glob.to_ascii_lowercase())?);
                        host_rule.push(index as u16);
                    }
                }
            }
            match &rule.paths {
                None => path_any.set(index),
                Some(globs) => {
                    for glob in globs {
                        paths.add(compile(rule, glob)?);
                        path_rule.push(index as u16);
                    }
                }
            }
            match &rule.methods {
                None => method_any.set(index),
                Some(list) => {
                    for method in list {
                        let slot = match methods.iter().position(|(m, _)| m == method) {
                            Some(slot) => slot,
                            None => {
                                methods.push((method.clone(), Bits::new(words)));
                                methods.len() - 1
                            }
                        };
                        methods[slot].1.set(index);
                    }
                }
            }
        }
        for (_, bits) in &mut methods {
            bits.or(&method_any);
        }
        Ok(Classifier {
            names: rules.iter().map(|r| r.name.clone()).collect(),
            action_names: rules.iter().map(|r| Arc::from(r.name.as_str())).collect(),
            hosts: build(hosts)?,
            host_rule,
            host_any,
            paths: build(paths)?,
            path_rule,
            path_any,
            methods,
            method_any,
        })
    }

    /// The name of an action.
    pub fn name(&self, id: ActionId) -> &str {
        self.names
            .get(usize::from(id.0))
            .map_or("?", String::as_str)
    }

    /// Every action's name by id, shared.
    pub fn action_names(&self) -> &Arc<[Arc<str>]> {
        &self.action_names
    }

    /// Every action's name, in `[[actions]]` order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The id of the action named `name`.
    pub fn id(&self, name: &str) -> Option<ActionId> {
        let index = self.names.iter().position(|n| n == name)?;
        u16::try_from(index).ok().map(ActionId)
    }

    /// The number of defined actions.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no action is defined.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every action whose rule matches `shape`, in `[[actions]]` order.
    pub fn classify(&self, shape: RequestShape<'_>) -> ActionSet {
        if self.names.is_empty() {
            return ActionSet::new();
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                matched,
                bits,
                globs,
                host,
            } = &mut *scratch;
            let host = lower_case(shape.host, host);
            let by_method = self
                .methods
                .iter()
                .find(|(m, _)| m == shape.method)
                .map_or(&self.method_any, |(_, bits)| bits);
            bits.copy_from(by_method);
            self.narrow(
                bits,
                matched,
                globs,
                &self.hosts,
                &self.host_rule,
                &self.host_any,
                host,
            );
            let path = path::normalize(shape.path.unwrap_or(""));
            if shape.path.is_some() {
                self.narrow(
                    bits,
                    matched,
                    globs,
                    &self.paths,
                    &self.path_rule,
                    &self.path_any,
                    &path,
                );
            } else {
                bits.and(&self.path_any);
            }
            bits.ones().map(|i| ActionId(i as u16)).collect()
        })
    }

    /// Keeps in `bits` the rules with no constraint of this kind or with a
    /// glob matching `text`.
    #[allow(clippy::too_many_arguments)]
    fn narrow(
        &self,
        bits: &mut Bits,
        matched: &mut Bits,
        globs: &mut Vec<usize>,
        set: &GlobSet,
        rule_of: &[u16],
        any: &Bits,
        text: &str,
    ) {
        matched.copy_from(any);
        if !set.is_empty() {
            set.matches_into(text, globs);
            for &glob in globs.iter() {
                matched.set(usize::from(rule_of[glob]));
            }
        }
        bits.and(matched);
    }
}

fn compile(rule: &ActionRule, glob: &str) -> Result<Glob, ClassifyError> {
    GlobBuilder::new(&globset_pattern(glob))
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|err| ClassifyError {
            action: rule.name.clone(),
            glob: glob.to_owned(),
            reason: err.to_string(),
        })
}

fn build(builder: GlobSetBuilder) -> Result<GlobSet, ClassifyError> {
    builder.build().map_err(|err| ClassifyError {
        action: String::new(),
        glob: String::new(),
        reason: err.to_string(),
    })
}

/// `host` lower-cased and without a trailing dot (SPEC section 5).
fn lower_case<'a>(host: &'a str, buffer: &'a mut String) -> &'a str {
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return host;
    }
    buffer.clear();
    buffer.push_str(host);
    buffer.make_ascii_lowercase();
    buffer
}

/// Per-thread buffers, so classifying allocates nothing.
struct Scratch {
    matched: Bits,
    bits: Bits,
    globs: Vec<usize>,
    host: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            matched: Bits(Vec::new()),
            bits: Bits(Vec::new()),
            globs: Vec::new(),
            host: String::new(),
        })
    };
}

#[cfg(test)]
mod tests;
