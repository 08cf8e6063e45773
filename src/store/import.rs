//! Users and refresh tokens brought in from elsewhere (a Django project), with their ids, in one
//! transaction: [`Store::import`](super::Store::import). Which rows are new, already ours or in
//! conflict is decided here, by [`plan`], the same for every engine; an engine only reads the
//! rows of its own that the import touches and writes what the plan says.

use super::{Outstanding, PasswordHash, User};
use std::collections::{HashMap, HashSet};

/// A user as it is brought in: its id and everything Django keeps that handstamp uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub id: i64,
    pub username: String,
    /// Stored as it was: Django's formats verify, and are upgraded at the next login.
    pub password: PasswordHash,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: i64,
    pub last_login: Option<i64>,
}

/// A refresh token that was blacklisted where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedBlacklisting {
    pub jti: String,
    pub expires_at: i64,
    pub blacklisted_at: i64,
}

/// What one import writes.
#[derive(Debug, Clone, Default)]
pub struct Import {
    pub users: Vec<ImportedUser>,
    /// Outstanding refresh tokens; they belong to no session (no family), so they refresh as
    /// tokens from before sessions do.
    pub tokens: Vec<Outstanding>,
    pub blacklisted: Vec<ImportedBlacklisting>,
}

/// How an import treats users that clash with ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportMode {
    /// Keep our user where an imported one clashes with it, and report it skipped, instead of
    /// refusing the whole import.
    pub keep_ours: bool,
    /// Check and count everything, then write nothing.
    pub dry_run: bool,
    /// The time blacklist entries added by the import itself carry.
    pub now: i64,
}

/// What an import wrote (or, in a dry run, would write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub users_imported: u64,
    /// Already ours, identical: nothing to write.
    pub users_unchanged: u64,
    /// Clashing with ours, kept ours (`keep_ours`): their usernames.
    pub users_skipped: Vec<String>,
    /// Outstanding tokens recorded (those already recorded are not counted).
    pub tokens: u64,
    /// Blacklist entries added (those already there are not counted).
    pub blacklisted: u64,
}

/// An imported user that clashes with one of ours, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConflict {
    pub id: i64,
    pub username: String,
    /// What differs, for the person running the import.
    pub reason: String,
}

impl std::fmt::Display for UserConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {}): {}", self.username, self.id, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Written (unless a dry run), with these counts.
    Done(ImportCounts),
    /// Users clash with ours and `keep_ours` is off: nothing was written.
    Conflicts(Vec<UserConflict>),
}

/// What to write, decided from the import and our rows that share an id or a username with it.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub users: Vec<&'a ImportedUser>,
    pub unchanged: u64,
    pub skipped: Vec<String>,
    pub conflicts: Vec<UserConflict>,
    /// Tokens to record: all but those of users skipped because our user of that id is
    /// another person.
    pub tokens: Vec<&'a Outstanding>,
    /// Blacklist entries to add: the imported ones, and the tokens left out above, so that no
    /// token issued to their user there refreshes as our user of the same id here.
    pub blacklisted: Vec<ImportedBlacklisting>,
}

/// Sorts the import's users against `ours` (our users with any of their ids or usernames) into
/// new, unchanged and clashing ones. Identical means the same id, username, hash, flags and
/// date joined; `last_login` is not compared (it moves with every login here).
pub fn plan<'a>(import: &'a Import, ours: &[User], mode: ImportMode) -> Plan<'a> {
    let by_id: HashMap<i64, &User> = ours.iter().map(|u| (u.id, u)).collect();
    let by_name: HashMap<&str, &User> = ours.iter().map(|u| (u.username.as_str(), u)).collect();
    let mut plan = Plan::default();
    // Ids whose tokens must not be honoured: our user of that id is someone else.
    let mut foreign = HashSet::new();
    for user in &import.users {
        let reason = match (by_id.get(&user.id), by_name.get(user.username.as_str())) {
            (None, None) => {
                plan.users.push(user);
                continue;
            }
            (Some(ours), _) if ours.username != user.username => {
                foreign.insert(user.id);
                format!("id {} is our user {:?}", user.id, ours.username)
            }
            (None, Some(ours)) => format!("our user {:?} has id {}", ours.username, ours.id),
            (Some(ours), _) => match differences(user, ours) {
                None => {
                    plan.unchanged += 1;
                    continue;
                }
                Some(what) => format!("our user differs in {what}"),
            },
        };
        if mode.keep_ours {
            plan.skipped.push(user.username.clone());
        } else {
            let (id, username) = (user.id, user.username.clone());
            plan.conflicts.push(UserConflict {
                id,
                username,
                reason,
            });
        }
    }
    for token in &import.tokens {
        match token.user_id {
            Some(id) if foreign.contains(&id) => plan.blacklisted.push(ImportedBlacklisting {
                jti: token.jti.clone(),
                expires_at: token.expires_at,
                blacklisted_at: mode.now,
            }),
            _ => plan.tokens.push(token),
        }
    }
    plan.blacklisted.extend(import.blacklisted.iter().cloned());
    plan
}

/// The fields in which `ours` (same id and username) differs from `user`, if any.
fn differences(user: &ImportedUser, ours: &User) -> Option<String> {
    let fields = [
        ("password hash", user.password != ours.password),
        ("is_active", user.is_active != ours.is_active),
        ("is_staff", user.is_staff != ours.is_staff),
        ("is_superuser", user.is_superuser != ours.is_superuser),
        ("date_joined", user.date_joined != ours.date_joined),
    ];
    let differing: Vec<&str> = fields.iter().filter(|f| f.1).map(|f| f.0).collect();
    (!differing.is_empty()).then(|| differing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(id: i64, name: &str) -> ImportedUser {
        ImportedUser {
            id,
            username: name.into(),
            password: "pbkdf2_sha256$1000$salt$hash".into(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: 100,
            last_login: None,
        }
    }

    fn ours(user: &ImportedUser) -> User {
        User {
            id: user.id,
            username: user.username.clone(),
            password: user.password.clone(),
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            date_joined: user.date_joined,
            last_login: Some(500),
            tokens_valid_after: None,
        }
    }

    const STRICT: ImportMode = ImportMode {
        keep_ours: false,
        dry_run: false,
        now: 1000,
    };

    #[test]
    fn users_are_new_unchanged_or_in_conflict() {
        let import = Import {
            users: vec![
                imported(1, "new"),
                imported(2, "same"),
                imported(3, "renamed"),
                imported(4, "moved"),
                imported(5, "changed"),
            ],
            ..Import::default()
        };
        let mut changed = ours(&import.users[4]);
        changed.is_staff = true;
        changed.password = "$argon2id$other".into();
        let existing = [
            ours(&import.users[1]),
            User {
                username: "someone".into(),
                ..ours(&import.users[2])
            },
            User {
                id: 40,
                ..ours(&import.users[3])
            },
            changed,
        ];
        let plan = plan(&import, &existing, STRICT);
        assert_eq!(plan.users, [&import.users[0]]);
        assert_eq!(plan.unchanged, 1);
        let reasons: Vec<String> = plan.conflicts.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "renamed (id 3): id 3 is our user \"someone\"",
                "moved (id 4): our user \"moved\" has id 40",
                "changed (id 5): our user differs in password hash, is_staff",
            ]
        );
        let keep = ImportMode {
            keep_ours: true,
            ..STRICT
        };
        let plan = super::plan(&import, &existing, keep);
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.skipped, ["renamed", "moved", "changed"]);
    }

    #[test]
    fn tokens_of_a_user_whose_id_is_someone_else_here_are_blacklisted() {
        let token = |jti: &str, user_id| Outstanding {
            jti: jti.into(),
            user_id: Some(user_id),
            created_at: None,
            expires_at: 2000,
        };
        let import = Import {
            users: vec![imported(3, "renamed"), imported(4, "new")],
            tokens: vec![token("a", 3), token("b", 4)],
            blacklisted: vec![],
        };
        let existing = [User {
            username: "someone".into(),
            ..ours(&import.users[0])
        }];
        let keep = ImportMode {
            keep_ours: true,
            ..STRICT
        };
        let plan = plan(&import, &existing, keep);
        let jtis: Vec<&str> = plan.tokens.iter().map(|t| t.jti.as_str()).collect();
        assert_eq!(jtis, ["b"]);
        let expected = ImportedBlacklisting {
            jti: "a".into(),
            expires_at: 2000,
            blacklisted_at: 1000,
        };
        assert_eq!(plan.blacklisted, [expected]);
    }
}
