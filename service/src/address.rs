//! Where a worker listens and where the lb reaches it: `host:port` or `unix:/path`.
//! Written once so `API_LISTEN` and `API_ADDRS` accept exactly the same spellings.

use std::path::PathBuf;

/// One address, as spelled in `API_LISTEN` or in the list `API_ADDRS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `host:port`, the host an IP address or a name (resolved when used).
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is neither `host:port` nor `unix:/path`")]
    Malformed(String),
    #[error("at least one address is needed")]
    Empty,
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        let malformed = || AddressError::Malformed(text.to_string());
        if let Some(path) = text.strip_prefix("unix:") {
            return match path.is_empty() {
                true => Err(malformed()),
                false => Ok(Address::Unix(PathBuf::from(path))),
            };
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(text.to_string()))
            }
            _ => Err(malformed()),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(hostport) => f.write_str(hostport),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Address {
    /// One address (a [`crate::config::checked`] parser).
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        text.parse()
    }

    /// A comma-separated list of at least one address; blanks around and between
    /// entries are ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Address>, AddressError> {
        let list = text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(Address::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match list.is_empty() {
            true => Err(AddressError::Empty),
            false => Ok(list),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_kinds() {
        for text in ["127.0.0.1:9101", "api1:8080", "unix:/run/api/1.sock"] {
            assert_eq!(Address::parse(text).unwrap().to_string(), text);
        }
        for bad in ["127.0.0.1", ":80", "host:port", "unix:", "localhost"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_take_both_kinds_and_need_one() {
        let list = Address::parse_list(" 127.0.0.1:9101 , unix:/tmp/api.sock,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1], Address::Unix("/tmp/api.sock".into()));
        assert_eq!(Address::parse_list(" , "), Err(AddressError::Empty));
        assert!(Address::parse_list("127.0.0.1").is_err());
    }
}
