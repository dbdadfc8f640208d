//! Secrets kept out of errors and logs: [`redact_url`] hides the password
//! of a URL's user info (`mqtt://edge:s3cret@broker` prints as
//! `mqtt://edge:***@broker`), so a parse error or a log line can show
//! the URL an operator wrote without showing the secret in it.

/// What replaces a password.
pub const REDACTED: &str = "***";

/// `url` with the password of its user info replaced by [`REDACTED`];
/// the scheme, user name, host, path and query are kept. Works on text
/// that is not a valid URL (no scheme, no host, several `@`), since it is
/// meant for the error that says so.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The last `@` before the query ends the user info: a password may
    // hold an `@` or a `/` (unencoded). An `@` in a path makes more than
    // the password hidden, which is the safe way to be wrong.
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let (userinfo, host_and_tail) = (&rest[..at], &rest[at + 1..]);
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:{REDACTED}"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}{user}@{host_and_tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        let cases = [
            (
                "mqtt://edge:s3cret@broker:1883",
                "mqtt://edge:***@broker:1883",
            ),
            ("mqtts://edge:p@ss:w@rd@h/", "mqtts://edge:***@h/"),
            (
                "scylla://u:s3cret@h1,h2/ks?tls=1",
                "scylla://u:***@h1,h2/ks?tls=1",
            ),
            ("edge:s3cret@broker", "edge:***@broker"),
            ("mqtt://edge@broker", "mqtt://edge@broker"),
            ("mqtt://broker:1883", "mqtt://broker:1883"),
            ("http://h/path?x=a@b:c", "http://h/path?x=a@b:c"),
            ("mqtt://edge:s3c/ret@broker", "mqtt://edge:***@broker"),
            ("", ""),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("s3c") && !got.contains("ss:w"), "{got}");
        }
    }
}
