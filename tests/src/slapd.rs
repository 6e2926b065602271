//! A throwaway OpenLDAP server configured like a UCS primary: the main database with the
//! `syncprov` and `accesslog` overlays, and `cn=accesslog` (itself with `syncprov`) defined
//! before it, as the notifier needs (see docs/slapd.md).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::HarnessError;
use crate::process::{Guard, accepts, free_port};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMAS: &[&str] = &["core", "cosine", "nis", "inetorgperson"];
const ROOT_PASSWORD: &str = "test-root-secret";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How to configure a [`Slapd`] before it starts.
#[derive(Debug, Clone)]
pub struct SlapdBuilder {
    base: String,
    no_sync: bool,
    acls: Vec<String>,
    entries: Vec<String>,
    accesslog_purge: Option<String>,
    /// The primary's URI, for a replica (`olcUpdateRef`).
    replica_of: Option<String>,
    /// A native syncrepl consumer of this provider (URI, bind DN, password): starts
    /// empty and copies it with `olcSyncrepl` refreshAndPersist.
    syncrepl_of: Option<(String, String, String)>,
}

impl Default for SlapdBuilder {
    fn default() -> Self {
        SlapdBuilder {
            base: "dc=example,dc=com".into(),
            no_sync: true,
            acls: Vec::new(),
            entries: Vec::new(),
            accesslog_purge: None,
            replica_of: None,
            syncrepl_of: None,
        }
    }
}

impl SlapdBuilder {
    /// The suffix of the main database (default `dc=example,dc=com`).
    pub fn base(mut self, base: &str) -> Self {
        self.base = base.into();
        self
    }

    /// `olcDbNoSync` on both databases (default on: ~5x faster writes, fine for tests).
    pub fn no_sync(mut self, no_sync: bool) -> Self {
        self.no_sync = no_sync;
        self
    }

    /// An extra `olcAccess` rule for the main database, e.g.
    /// `to dn.subtree="cn=hidden,dc=example,dc=com" by dn.exact="cn=listener,dc=example,dc=com" none by * break`.
    /// Rules apply in the order given, before the default "everyone reads everything".
    pub fn acl(mut self, rule: &str) -> Self {
        self.acls.push(rule.into());
        self
    }

    /// Entries (LDIF content records) loaded with `slapadd` before the server starts:
    /// they exist from the start and are not in the accesslog.
    pub fn entries(mut self, ldif: &str) -> Self {
        self.entries.push(ldif.into());
        self
    }

    /// `olcAccessLogPurge` (default `07+00:00 01+00:00`).
    pub fn accesslog_purge(mut self, purge: &str) -> Self {
        self.accesslog_purge = Some(purge.into());
        self
    }

    /// A replica of the primary at `uri`, set up as UCS sets up its replicas: the rootDN
    /// and the updatedn are both `cn=update,<base>` ([`Slapd::root_dn`]), whose writes
    /// keep the operational attributes they are given, and `olcUpdateRef` sends other
    /// clients' writes to `uri`.
    pub fn replica_of(mut self, uri: &str) -> Self {
        self.replica_of = Some(uri.into());
        self
    }

    /// A native OpenLDAP syncrepl consumer of the provider at `uri`, bound as `bind_dn`
    /// with `password` (`olcSyncrepl` refreshAndPersist, every attribute, no schema
    /// checking): the baseline a replica is measured against. Its database starts
    /// empty, without even the base entry, which it copies from the provider.
    pub fn syncrepl_of(mut self, uri: &str, bind_dn: &str, password: &str) -> Self {
        self.syncrepl_of = Some((uri.into(), bind_dn.into(), password.into()));
        self
    }

    /// Writes the configuration, loads the entries and starts the server; returns when it
    /// answers LDAP on its own socket.
    pub fn start(self) -> Result<Slapd, HarnessError> {
        for program in [SLAPD, SLAPADD, "ldapsearch"] {
            if program.starts_with('/') && !Path::new(program).exists() {
                return Err(HarnessError::Missing { program: "slapd" });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("slapd-")
            .tempdir()
            .map_err(HarnessError::io("cannot create a temporary directory"))?;
        let root = dir.path();
        for sub in ["slapd.d", "accesslog", "data"] {
            std::fs::create_dir(root.join(sub))
                .map_err(HarnessError::io(format!("cannot create {sub}")))?;
        }
        let config = root.join("config.ldif");
        write(&config, &self.config_ldif(root))?;
        slapadd(root, &["-n0", "-l"], &config)?;
        if self.syncrepl_of.is_none() {
            let data = root.join("data.ldif");
            write(&data, &self.data_ldif())?;
            slapadd(root, &["-b", &self.base, "-l"], &data)?;
        }
        let password_file = root.join("root.secret");
        write(&password_file, ROOT_PASSWORD)?;
        // Readable by its owner only, as a password file should be (`ldapmodify -y`
        // warns about one that is not).
        std::fs::set_permissions(
            &password_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(HarnessError::io(format!(
            "cannot restrict {}",
            password_file.display()
        )))?;

        let socket = root.join("ldapi");
        let ldapi_url = format!("ldapi://{}", url_encode(&socket.to_string_lossy()));
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let url = format!("ldap://127.0.0.1:{port}");
            let mut child = Guard::spawn(
                Command::new(SLAPD)
                    .arg("-d")
                    .arg("none")
                    .arg("-F")
                    .arg(root.join("slapd.d"))
                    .arg("-h")
                    .arg(format!("{url}/ {ldapi_url}/")),
                "slapd",
            )?;
            match wait_ready(&mut child, port, &socket, &ldapi_url) {
                Ok(()) => {
                    return Ok(Slapd {
                        child,
                        port,
                        url,
                        ldapi_url,
                        root_dn: self.root_dn(),
                        base: self.base,
                        password_file,
                        dir,
                    });
                }
                Err(Retry::OtherPort(message)) => last_error = message,
                Err(Retry::Fatal(message)) => {
                    return Err(HarnessError::Failed {
                        program: "slapd",
                        message,
                    });
                }
            }
        }
        Err(HarnessError::Failed {
            program: "slapd",
            message: format!("no free port after {START_ATTEMPTS} attempts: {last_error}"),
        })
    }

    fn config_ldif(&self, root: &Path) -> String {
        let dir = root.display();
        let root_dn = self.root_dn();
        let no_sync = if self.no_sync { "TRUE" } else { "FALSE" };
        let purge = self
            .accesslog_purge
            .as_deref()
            .unwrap_or("07+00:00 01+00:00");
        let peercred = "dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth";
        // `olcLogLevel: none`, as Debian's own configuration has it: slapd's built-in
        // default (stats) sends a few syslog lines per operation, and on a machine without
        // a syslog daemon each of them costs a failed connect (docs/slapd.md).
        let mut ldif = format!(
            "dn: cn=config\n\
             objectClass: olcGlobal\n\
             cn: config\n\
             olcPidFile: {dir}/slapd.pid\n\
             olcArgsFile: {dir}/slapd.args\n\
             olcSizeLimit: unlimited\n\
             olcLogLevel: none\n\
             \n\
             dn: cn=module{{0}},cn=config\n\
             objectClass: olcModuleList\n\
             cn: module{{0}}\n\
             olcModulePath: /usr/lib/ldap\n\
             olcModuleLoad: back_mdb\n\
             olcModuleLoad: syncprov\n\
             olcModuleLoad: accesslog\n\
             \n\
             dn: cn=schema,cn=config\n\
             objectClass: olcSchemaConfig\n\
             cn: schema\n\
             \n"
        );
        for schema in SCHEMAS {
            let _ = writeln!(ldif, "include: file:///etc/ldap/schema/{schema}.ldif\n");
        }
        let _ = write!(
            ldif,
            "dn: olcDatabase={{-1}}frontend,cn=config\n\
             objectClass: olcDatabaseConfig\n\
             objectClass: olcFrontendConfig\n\
             olcDatabase: {{-1}}frontend\n\
             olcSizeLimit: unlimited\n\
             olcAccess: {{0}}to * by {peercred} manage by * break\n\
             olcAccess: {{1}}to dn.base=\"\" by * read\n\
             olcAccess: {{2}}to dn.base=\"cn=Subschema\" by * read\n\
             \n\
             dn: olcDatabase={{0}}config,cn=config\n\
             objectClass: olcDatabaseConfig\n\
             olcDatabase: {{0}}config\n\
             olcAccess: {{0}}to * by {peercred} manage by * none\n\
             \n\
             dn: olcDatabase={{1}}mdb,cn=config\n\
             objectClass: olcDatabaseConfig\n\
             objectClass: olcMdbConfig\n\
             olcDatabase: {{1}}mdb\n\
             olcDbDirectory: {dir}/accesslog\n\
             olcSuffix: cn=accesslog\n\
             olcRootDN: cn=accesslog\n\
             olcDbMaxSize: 4294967296\n\
             olcDbNoSync: {no_sync}\n\
             olcSizeLimit: unlimited\n\
             olcDbIndex: reqStart eq\n\
             olcDbIndex: entryCSN eq\n\
             olcAccess: {{0}}to * by {peercred} manage by dn.exact=\"{root_dn}\" read by users read by * none\n\
             \n\
             dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\n\
             objectClass: olcSyncProvConfig\n\
             olcOverlay: {{0}}syncprov\n\
             olcSpNoPresent: TRUE\n\
             olcSpReloadHint: TRUE\n\
             \n\
             dn: olcDatabase={{2}}mdb,cn=config\n\
             objectClass: olcDatabaseConfig\n\
             objectClass: olcMdbConfig\n\
             olcDatabase: {{2}}mdb\n\
             olcDbDirectory: {dir}/data\n\
             olcSuffix: {base}\n\
             olcRootDN: {root_dn}\n\
             olcRootPW: {ROOT_PASSWORD}\n\
             olcDbMaxSize: 4294967296\n\
             olcDbNoSync: {no_sync}\n\
             olcSizeLimit: unlimited\n\
             olcDbIndex: objectClass eq\n\
             olcDbIndex: entryUUID eq\n\
             olcDbIndex: entryCSN eq\n\
             olcDbIndex: uid eq\n\
             olcDbIndex: cn eq\n",
            base = self.base,
        );
        if let Some(primary) = &self.replica_of {
            let _ = writeln!(ldif, "olcUpdateDN: {root_dn}\nolcUpdateRef: {primary}");
        }
        if let Some((provider, bind_dn, password)) = &self.syncrepl_of {
            let _ = writeln!(
                ldif,
                "olcSyncrepl: {{0}}rid=001 provider={provider} bindmethod=simple \
                 binddn=\"{bind_dn}\" credentials=\"{password}\" searchbase=\"{base}\" \
                 type=refreshAndPersist retry=\"1 +\" scope=sub attrs=\"*,+\" \
                 schemachecking=off\nolcUpdateRef: {provider}",
                base = self.base
            );
        }
        let mut index = 0;
        let mut access = |rule: &str| {
            let _ = writeln!(ldif, "olcAccess: {{{index}}}{rule}");
            index += 1;
        };
        access(&format!("to * by {peercred} manage by * break"));
        access("to attrs=userPassword by self write by anonymous auth by * none");
        for rule in &self.acls {
            access(rule);
        }
        access("to * by * read");
        let _ = write!(
            ldif,
            "\n\
             dn: olcOverlay={{0}}syncprov,olcDatabase={{2}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\n\
             objectClass: olcSyncProvConfig\n\
             olcOverlay: {{0}}syncprov\n\
             \n\
             dn: olcOverlay={{1}}accesslog,olcDatabase={{2}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\n\
             objectClass: olcAccessLogConfig\n\
             olcOverlay: {{1}}accesslog\n\
             olcAccessLogDB: cn=accesslog\n\
             olcAccessLogOps: writes\n\
             olcAccessLogSuccess: TRUE\n\
             olcAccessLogPurge: {purge}\n"
        );
        ldif
    }

    fn data_ldif(&self) -> String {
        let dc = self
            .base
            .split(',')
            .next()
            .and_then(|rdn| rdn.split_once('='))
            .map(|(_, v)| v.trim())
            .unwrap_or("example");
        let mut ldif = format!(
            "dn: {base}\n\
             objectClass: dcObject\n\
             objectClass: organization\n\
             dc: {dc}\n\
             o: {dc}\n",
            base = self.base
        );
        for entries in &self.entries {
            ldif.push('\n');
            ldif.push_str(entries.trim());
            ldif.push('\n');
        }
        ldif
    }
}

enum Retry {
    OtherPort(String),
    Fatal(String),
}

fn wait_ready(child: &mut Guard, port: u16, socket: &Path, ldapi_url: &str) -> Result<(), Retry> {
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Some(reason) = child.exited() {
            return Err(
                if reason.contains("errno=98") || reason.contains("in use") {
                    Retry::OtherPort(reason)
                } else {
                    Retry::Fatal(format!("exited during start: {reason}"))
                },
            );
        }
        // Our own socket first: a TCP answer alone may come from another server.
        if socket.exists() && accepts(port) && root_dse_answers(ldapi_url) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Retry::Fatal(format!(
        "not ready after {READY_TIMEOUT:?} on port {port}"
    )))
}

fn root_dse_answers(ldapi_url: &str) -> bool {
    Command::new("ldapsearch")
        .args(["-x", "-H", ldapi_url, "-b", "", "-s", "base", "-LLL", "1.1"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

fn slapadd(root: &Path, args: &[&str], ldif: &Path) -> Result<(), HarnessError> {
    let out = Command::new(SLAPADD)
        .arg("-F")
        .arg(root.join("slapd.d"))
        .args(args)
        .arg(ldif)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HarnessError::Missing { program: "slapadd" },
            _ => HarnessError::Io {
                what: "cannot run slapadd".into(),
                source: e,
            },
        })?;
    if !out.status.success() {
        return Err(HarnessError::Failed {
            program: "slapadd",
            message: format!(
                "{} loading {}: {}",
                out.status,
                ldif.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

fn write(path: &Path, content: &str) -> Result<(), HarnessError> {
    std::fs::write(path, content)
        .map_err(HarnessError::io(format!("cannot write {}", path.display())))
}

fn url_encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl SlapdBuilder {
    /// `cn=update,<base>` for a replica, else `cn=admin,<base>`.
    fn root_dn(&self) -> String {
        match self.replica_of {
            Some(_) => format!("cn=update,{}", self.base),
            None => format!("cn=admin,{}", self.base),
        }
    }
}

/// A running throwaway slapd; stopped and removed on drop.
pub struct Slapd {
    // Field order matters: the server stops before its directory is removed.
    child: Guard,
    port: u16,
    url: String,
    ldapi_url: String,
    base: String,
    root_dn: String,
    password_file: PathBuf,
    dir: TempDir,
}

impl Slapd {
    /// A server with the default configuration.
    pub fn start() -> Result<Slapd, HarnessError> {
        SlapdBuilder::default().start()
    }

    /// Configure before starting.
    pub fn builder() -> SlapdBuilder {
        SlapdBuilder::default()
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ldapi://<socket>` (SASL EXTERNAL as root gets `manage` on everything, cn=config too).
    pub fn ldapi_url(&self) -> &str {
        &self.ldapi_url
    }

    /// The main database's suffix.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The main database's rootDN: `cn=admin,<base>`, or `cn=update,<base>` for a replica.
    pub fn root_dn(&self) -> String {
        self.root_dn.clone()
    }

    /// The rootDN's password (tests only; real code reads it from [`Slapd::password_file`]).
    pub fn root_password(&self) -> &'static str {
        ROOT_PASSWORD
    }

    /// A file holding the rootDN's password, as the daemons take it.
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// A connection over TCP, bound as `dn` (panics when that fails: for tests).
    pub async fn bind(&self, dn: &str, password: &str) -> ldap3::Ldap {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&self.url)
            .await
            .expect("connect to slapd");
        ldap3::drive!(conn);
        ldap.simple_bind(dn, password)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("bind as {dn}: {e}"));
        ldap
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Runs `ldapmodify` over `ldapi://` with SASL EXTERNAL as root, which may manage
    /// everything (cn=config and cn=accesslog too).
    pub fn ldapmodify_as_root(&self, ldif: &str) -> Result<(), HarnessError> {
        self.run_ldapmodify(&["-Q", "-Y", "EXTERNAL", "-H", &self.ldapi_url], ldif)
    }

    /// Runs `ldapmodify` as the rootDN with `ldif` (change records; content records are
    /// taken as adds with `-a`), so the changes are logged in the accesslog.
    pub fn ldapmodify(&self, ldif: &str) -> Result<(), HarnessError> {
        let password_file = self.password_file.to_string_lossy().into_owned();
        let root_dn = self.root_dn();
        self.run_ldapmodify(
            &["-x", "-H", &self.url, "-D", &root_dn, "-y", &password_file],
            ldif,
        )
    }

    fn run_ldapmodify(&self, auth: &[&str], ldif: &str) -> Result<(), HarnessError> {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .arg("-a")
            .args(auth)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(HarnessError::io("cannot run ldapmodify"))?;
        // Written from a thread while its output is read: a large LDIF would otherwise fill
        // the output pipe (a line per change) while we still write, and both would wait.
        let writer = child.stdin.take().map(|mut stdin| {
            let ldif = ldif.as_bytes().to_vec();
            std::thread::spawn(move || stdin.write_all(&ldif))
        });
        let out = child
            .wait_with_output()
            .map_err(HarnessError::io("cannot run ldapmodify"))?;
        if let Some(writer) = writer {
            writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")))
                .map_err(HarnessError::io("cannot write to ldapmodify"))?;
        }
        if !out.status.success() {
            return Err(HarnessError::Failed {
                program: "ldapmodify",
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM) and waits for it; the directory stays until
    /// drop, so a test can restart a server on the same data with [`Slapd::restart`].
    pub fn stop(&mut self) {
        self.child.kill_with(libc::SIGTERM);
    }

    /// Kills the server hard (SIGKILL), as in a crash.
    pub fn kill(&mut self) {
        self.child.kill_with(libc::SIGKILL);
    }

    /// Starts the server again on the same data, directory and port.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let socket = self.dir.path().join("ldapi");
        let _ = std::fs::remove_file(&socket);
        let started = Instant::now();
        loop {
            let mut child = Guard::spawn(
                Command::new(SLAPD)
                    .arg("-d")
                    .arg("none")
                    .arg("-F")
                    .arg(self.dir.path().join("slapd.d"))
                    .arg("-h")
                    .arg(format!("{}/ {}/", self.url, self.ldapi_url)),
                "slapd",
            )?;
            match wait_ready(&mut child, self.port, &socket, &self.ldapi_url) {
                Ok(()) => {
                    self.child = child;
                    return Ok(());
                }
                // The old server's port may linger in TIME_WAIT for a moment.
                Err(Retry::OtherPort(_)) if started.elapsed() < READY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Retry::OtherPort(message) | Retry::Fatal(message)) => {
                    return Err(HarnessError::Failed {
                        program: "slapd",
                        message,
                    });
                }
            }
        }
    }
}
