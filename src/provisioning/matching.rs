//! Pure matching rules: no database, so every rule has fast unit tests.

use super::{ExternalIdentity, IdpGroup};
use crate::store::{
    domains,
    grants::{GroupRef, Match},
};

/// Whether a grant lets this identity in. `email` is normalised; `domain_verified` says
/// whether its domain is verified for the org (checked again here, so a grant made before
/// a domain lost its verification does not keep matching).
pub fn grant_matches(
    rule: &Match,
    identity: &ExternalIdentity,
    email: Option<&str>,
    domain_verified: bool,
) -> bool {
    match rule {
        Match::Everyone => true,
        Match::EmailDomain { domain } => {
            domain_verified && email.and_then(domains::of_email).as_deref() == Some(domain.as_str())
        }
        Match::Group { id, name } => {
            let group = GroupRef {
                id: id.clone(),
                name: name.clone(),
            };
            group_matches(&group, &identity.groups).is_some()
        }
        Match::User {
            subject: Some(subject),
            ..
        } => identity.subject == *subject,
        Match::User {
            email: Some(wanted),
            ..
        } => email == Some(wanted.as_str()),
        Match::User { .. } => false,
    }
}

/// Whether any of the identity's groups is the named group; says which part matched.
/// IDs compare exactly (they are opaque, e.g. GUIDs); names case-insensitively, as IdP
/// admins type them.
pub fn group_matches(group: &GroupRef, groups: &[IdpGroup]) -> Option<&'static str> {
    if let Some(id) = &group.id {
        if groups.iter().any(|g| g.id.as_deref() == Some(id.as_str())) {
            return Some("id");
        }
    }
    if let Some(name) = &group.name {
        let name = name.to_lowercase();
        if groups
            .iter()
            .any(|g| g.name.as_deref().is_some_and(|n| n.to_lowercase() == name))
        {
            return Some("name");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, groups: &[(Option<&str>, Option<&str>)]) -> ExternalIdentity {
        ExternalIdentity {
            subject: subject.into(),
            groups: groups
                .iter()
                .map(|(id, name)| IdpGroup {
                    id: id.map(str::to_string),
                    name: name.map(str::to_string),
                })
                .collect(),
            ..Default::default()
        }
    }

    const ENTRA_GROUP: &str = "5f1c6f3e-8a0b-4a7e-9d3a-2b9f1f0a6c11";

    #[test]
    fn everyone_matches_everyone() {
        assert!(grant_matches(
            &Match::Everyone,
            &identity("s", &[]),
            None,
            false
        ));
    }

    #[test]
    fn domain_grants_need_the_domain_and_its_verification() {
        let rule = Match::EmailDomain {
            domain: "acme.com".into(),
        };
        let who = identity("s", &[]);
        assert!(grant_matches(&rule, &who, Some("ann@acme.com"), true));
        assert!(!grant_matches(&rule, &who, Some("ann@acme.com"), false));
        assert!(!grant_matches(&rule, &who, Some("ann@sub.acme.com"), true));
        assert!(!grant_matches(
            &rule,
            &who,
            Some("ann@acme.com.evil.io"),
            true
        ));
        assert!(!grant_matches(&rule, &who, None, true));
    }

    #[test]
    fn group_ids_match_exactly_and_names_ignore_case() {
        let by_id = Match::Group {
            id: Some(ENTRA_GROUP.into()),
            name: None,
        };
        let by_name = Match::Group {
            id: None,
            name: Some("Engineering".into()),
        };
        let entra = identity("s", &[(Some(ENTRA_GROUP), None)]);
        let okta = identity("s", &[(None, Some("ENGINEERING"))]);
        assert!(grant_matches(&by_id, &entra, None, false));
        assert!(!grant_matches(&by_id, &okta, None, false));
        assert!(grant_matches(&by_name, &okta, None, false));
        assert!(!grant_matches(&by_name, &entra, None, false));
        let upper = identity("s", &[(Some(&ENTRA_GROUP.to_uppercase()), None)]);
        assert!(!grant_matches(&by_id, &upper, None, false));
        // A name never matches an ID that happens to look the same, and vice versa.
        let name_as_id = identity("s", &[(None, Some(ENTRA_GROUP))]);
        assert!(!grant_matches(&by_id, &name_as_id, None, false));
    }

    #[test]
    fn mappings_say_which_part_matched() {
        let both = GroupRef {
            id: Some("g-1".into()),
            name: None,
        };
        let groups = vec![IdpGroup {
            id: Some("g-1".into()),
            name: Some("Eng".into()),
        }];
        assert_eq!(group_matches(&both, &groups), Some("id"));
        let by_name = GroupRef {
            id: None,
            name: Some("eng".into()),
        };
        assert_eq!(group_matches(&by_name, &groups), Some("name"));
        assert_eq!(group_matches(&by_name, &[]), None);
    }

    #[test]
    fn user_grants_match_subject_or_email() {
        let by_subject = Match::User {
            subject: Some("00u1abcd".into()),
            email: None,
        };
        let by_email = Match::User {
            subject: None,
            email: Some("ann@acme.com".into()),
        };
        let who = identity("00u1abcd", &[]);
        assert!(grant_matches(&by_subject, &who, None, false));
        assert!(!grant_matches(
            &by_subject,
            &identity("00u1abce", &[]),
            None,
            false
        ));
        assert!(grant_matches(&by_email, &who, Some("ann@acme.com"), false));
        assert!(!grant_matches(&by_email, &who, Some("bob@acme.com"), false));
    }
}
