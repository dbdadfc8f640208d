//! A local certificate authority for the broker's certificate mode
//! (`deploy/mosquitto-certs.conf`): `vigil devices ca init` makes it,
//! `vigil devices add ID --cert` issues a device's client certificate
//! (common name = device id, which Mosquitto's `use_identity_as_username`
//! turns into the MQTT user name the dynamic-security ACLs are keyed by)
//! and `vigil devices ca server-cert` the broker's own certificate.
//!
//! Keys are ECDSA P-256 (rcgen with ring), written with mode 0600; a CA
//! key readable by group or others is refused. The CA folder holds
//! `ca.key` and `ca.crt`; the CA's subject is fixed ([`CA_NAME`]), so the
//! issuer is rebuilt from the key alone and no certificate parser is
//! needed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::broker_auth::{write_atomic, BrokerAuthError};
use vigil_base::key_file::{check_key_file, KeyFileError, KeyFileRule};

/// Common name of the CA's certificate.
pub const CA_NAME: &str = "Vigil device CA";
/// How long the CA certificate is valid, days.
pub const CA_DAYS: u32 = 3650;
/// How long an issued certificate is valid by default, days.
pub const DEFAULT_DAYS: u32 = 825;

/// Why the CA could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Files(#[from] BrokerAuthError),
    #[error("{0} already exists: a CA is never overwritten (move it away first)")]
    Exists(PathBuf),
    #[error(transparent)]
    Exposed(#[from] KeyFileError),
    #[error("{}: {why}", path.display())]
    BadKey { path: PathBuf, why: String },
    #[error("making the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its key as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The PEM certificate (mode 0644).
    pub cert: PathBuf,
    /// The PEM private key (mode 0600).
    pub key: PathBuf,
}

/// The CA in one folder.
#[derive(Debug, Clone)]
pub struct DeviceCa {
    dir: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CaError + '_ {
    move |source| {
        CaError::Files(BrokerAuthError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Valid from an hour ago (clock skew) for `days` days.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// A random positive 128-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The CA certificate's parameters (the same each time: issued
/// certificates name this subject as their issuer).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl DeviceCa {
    /// The CA in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `ca.crt`: the file brokers use as `cafile` and clients as
    /// `--mqtt-ca-file` (it also signs the broker's certificate).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `ca.key`.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Makes the CA key and certificate; refuses to overwrite either.
    pub fn create(&self) -> Result<Issued, CaError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        for path in [self.key_file(), self.cert_file()] {
            if path.exists() {
                return Err(CaError::Exists(path));
            }
        }
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        params.serial_number = Some(serial());
        validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key)?;
        write_atomic(&self.key_file(), key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&self.cert_file(), cert.pem().as_bytes(), 0o644)?;
        Ok(Issued {
            cert: self.cert_file(),
            key: self.key_file(),
        })
    }

    /// The issuer: the CA key (checked for exposure) with its subject.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CaError> {
        let path = self.key_file();
        check_key_file(&path, KeyFileRule::owner_only("device CA key file"))?;
        let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| CaError::BadKey {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Ok(Issuer::new(ca_params(), key))
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        days: u32,
        out: &Path,
        file_name: &str,
    ) -> Result<Issued, CaError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate()?;
        params.serial_number = Some(serial());
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days);
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::create_dir_all(out).map_err(io(out))?;
        let issued = Issued {
            cert: out.join(format!("{file_name}.crt")),
            key: out.join(format!("{file_name}.key")),
        };
        write_atomic(&issued.key, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&issued.cert, cert.pem().as_bytes(), 0o644)?;
        Ok(issued)
    }

    /// A client certificate for `common_name` (a device id or a service
    /// user), valid `days` days: `out/<common_name>.crt` and `.key`.
    pub fn issue_client(
        &self,
        common_name: &str,
        days: u32,
        out: &Path,
    ) -> Result<Issued, CaError> {
        if common_name.is_empty() || common_name.contains(['/', '\\']) {
            return Err(CaError::Invalid(format!(
                "{common_name:?} cannot name a certificate"
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, days, out, common_name)
    }

    /// The broker's server certificate for `hosts` (DNS names or IP
    /// addresses clients connect to), valid `days` days:
    /// `out/server.crt` and `out/server.key`.
    pub fn issue_server(&self, hosts: &[String], days: u32, out: &Path) -> Result<Issued, CaError> {
        let first = hosts
            .first()
            .ok_or_else(|| CaError::Invalid("a server certificate needs a host".into()))?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = name(first);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, days, out, "server")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_once_and_guards_its_key() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = DeviceCa::new(tmp.path().join("ca"));
        ca.create().unwrap();
        assert!(matches!(ca.create(), Err(CaError::Exists(_))));
        let out = tmp.path().join("out");
        let pump = ca.issue_client("pump-1", 30, &out).unwrap();
        let pem = std::fs::read_to_string(&pump.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let server = ca
            .issue_server(&["127.0.0.1".into(), "broker".into()], 30, &out)
            .unwrap();
        assert!(server.key.ends_with("server.key"));
        assert!(ca.issue_server(&[], 30, &out).is_err());
        assert!(ca.issue_client("../x", 30, &out).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&pump.key), 0o600);
            assert_eq!(mode(&ca.key_file()), 0o600);
            std::fs::set_permissions(ca.key_file(), std::fs::Permissions::from_mode(0o640))
                .unwrap();
            let err = ca.issue_client("pump-2", 30, &out).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }
}
