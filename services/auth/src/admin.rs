//! Operator commands of the auth binary, run with the service's own configuration:
//!
//! ```text
//! auth grant-admin EMAIL     the user's tokens carry `admin: true` from their next sign-in or refresh
//! auth revoke-admin EMAIL    and no longer
//! ```

use crate::config::Config;
use crate::users::Users;

/// An operator command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    GrantAdmin(String),
    RevokeAdmin(String),
}

impl Command {
    /// `None` when the arguments name no command (then the service runs); an error for a
    /// command used wrongly.
    pub fn parse(args: &[String]) -> Result<Option<Self>, String> {
        match args {
            [] => Ok(None),
            [command, email] if command == "grant-admin" => Ok(Some(Self::GrantAdmin(email.trim().to_lowercase()))),
            [command, email] if command == "revoke-admin" => Ok(Some(Self::RevokeAdmin(email.trim().to_lowercase()))),
            [command, ..] if command == "grant-admin" || command == "revoke-admin" => {
                Err(format!("usage: auth {command} EMAIL"))
            }
            [other, ..] => Err(format!("unknown command {other:?}; commands: grant-admin EMAIL, revoke-admin EMAIL")),
        }
    }
}

/// Runs `command` against the configured database and returns what to tell the operator,
/// or an error such as an unknown email.
pub async fn run(config: &Config, command: &Command) -> anyhow::Result<String> {
    let db = common::mongo::connect(&config.mongo, crate::SERVICE).await?;
    let users = Users::new(&db);
    let (email, admin) = match command {
        Command::GrantAdmin(email) => (email, true),
        Command::RevokeAdmin(email) => (email, false),
    };
    if !users.set_admin(email, admin).await? {
        anyhow::bail!("no user has the email {email}");
    }
    Ok(if admin {
        format!("{email} is now an administrator (from their next sign-in or token refresh)")
    } else {
        format!("{email} is no longer an administrator (from their next sign-in or token refresh)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn commands_are_parsed_and_misuse_is_explained() {
        assert_eq!(Command::parse(&args(&[])), Ok(None));
        assert_eq!(
            Command::parse(&args(&["grant-admin", " Admin@Example.com "])),
            Ok(Some(Command::GrantAdmin("admin@example.com".into())))
        );
        assert_eq!(Command::parse(&args(&["revoke-admin", "a@b.co"])), Ok(Some(Command::RevokeAdmin("a@b.co".into()))));
        assert!(Command::parse(&args(&["grant-admin"])).unwrap_err().contains("usage"));
        assert!(Command::parse(&args(&["frobnicate"])).unwrap_err().contains("unknown command"));
    }
}
