//! Planning one instruction of a stage: its words expanded with the stage's args and
//! environment, checked, and turned into the step (RUN, COPY/ADD with their sources) or the
//! config change it makes.

use super::*;

/// `80`, `80/udp`, `8000-8010/tcp` into `port/proto` entries.
fn parse_ports(spec: &str) -> Result<Vec<String>, PlanErrorKind> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(bad(
            "EXPOSE",
            format!("invalid protocol {proto:?} in {spec:?} (tcp, udp or sctp)"),
        ));
    }
    if ports.contains(':') {
        return Err(bad(
            "EXPOSE",
            format!(
                "{spec:?}: EXPOSE does not take IP or host-port mappings; publish ports when running the container"
            ),
        ));
    }
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| bad("EXPOSE", format!("invalid port {s:?} in {spec:?}")))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if lo > hi {
        return Err(bad("EXPOSE", format!("invalid port range {spec:?}")));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A signal Docker would accept: a number, a name with or without SIG, or RTMIN+n/RTMAX-n.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
    {
        return rest.is_empty()
            || rest
                .strip_prefix(['+', '-'])
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 30));
    }
    nix::sys::signal::Signal::from_str(&format!("SIG{name}")).is_ok()
}

/// Join a COPY destination or WORKDIR with the current working directory, keeping a trailing
/// `/` (it means "directory" for COPY).
fn absolute(workdir: &str, p: &str) -> String {
    let trailing = p.ends_with('/') || p == "." || p.ends_with("/.");
    let joined = if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("{workdir}/{p}"))
    };
    if trailing && joined != "/" {
        format!("{joined}/")
    } else {
        joined
    }
}

/// The RUN argv for shell form with heredocs, as BuildKit runs it.
fn run_with_heredocs(
    st: &StageState,
    cmd: &str,
    heredocs: &[crate::build::syntax::Heredoc],
) -> (Vec<String>, Option<String>) {
    let only_marker = heredocs.len() == 1 && {
        let t = cmd.trim();
        let h = &heredocs[0];
        let names = [
            format!("<<{}", h.name),
            format!("<<-{}", h.name),
            format!("<<\"{}\"", h.name),
            format!("<<-\"{}\"", h.name),
            format!("<<'{}'", h.name),
            format!("<<-'{}'", h.name),
        ];
        names.iter().any(|n| n == t)
    };
    if only_marker {
        let content = heredocs[0].content.clone();
        if content.starts_with("#!") {
            return (Vec::new(), Some(content));
        }
        let mut v = st.config.shell_or_default();
        v.push(content);
        return (v, None);
    }
    // The shell reads the heredocs itself: hand it the command followed by the bodies.
    let mut script = cmd.to_string();
    for h in heredocs {
        script.push('\n');
        script.push_str(&h.content);
        script.push_str(&h.name);
    }
    let mut v = st.config.shell_or_default();
    v.push(script);
    (v, None)
}

/// A git repository named as an ADD source (`git@host:repo`, `git://`, `*.git` URLs,
/// `https://host/repo.git#ref`), which BuildKit clones.
fn is_git_source(p: &str) -> bool {
    let no_fragment = p.split('#').next().unwrap_or(p);
    p.starts_with("git@")
        || p.starts_with("git://")
        || p.starts_with("ssh://")
        || (p.contains("://") && no_fragment.ends_with(".git"))
}

/// [`Context::hash_source`] of what `--exclude` keeps: an edit to an excluded file changes
/// no key.
fn hash_kept(
    ctx: &Context,
    s: &crate::build::context::SelectedSource,
    rules: &IgnoreRules,
    h: &mut Sha256,
) -> Result<(), ContextError> {
    use crate::build::context::EntryKind;
    let base = match s.entry {
        Some(i) if s.is_dir => format!("{}/", ctx.entries()[i].rel),
        _ => String::new(),
    };
    field(h, s.rel.as_bytes());
    for i in ctx.members(s) {
        let e = &ctx.entries()[i];
        let rel = e.rel.strip_prefix(&base).unwrap_or(&e.rel);
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if rules.is_excluded(rel) || (!s.is_dir && rules.is_excluded(name)) {
            continue;
        }
        field(h, rel.as_bytes());
        field(h, format!("{:o}", e.mode).as_bytes());
        match &e.kind {
            EntryKind::Dir => field(h, b"d"),
            EntryKind::Symlink(t) => {
                field(h, b"l");
                field(h, t.as_bytes());
            }
            EntryKind::File => {
                field(h, b"f");
                field(h, &ctx.file_digest(i)?);
            }
        }
    }
    Ok(())
}

impl Planner<'_> {
    /// `ADD --checksum=sha256:<hex>`: the one source, a context file, must have that digest
    /// (checked before anything runs; a mismatch names both digests).
    fn verify_checksum(&self, want: &str, sources: &[CopySource]) -> Result<(), PlanErrorKind> {
        let hex_part = want.strip_prefix("sha256:").unwrap_or("");
        if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "ADD",
                format!("--checksum={want}: expected sha256:<64 hex digits>"),
            ));
        }
        let entry = match sources {
            [CopySource::Context(sel)] if !sel.is_dir => sel.entry,
            // Checked against the bytes as they are downloaded.
            [CopySource::Url(_)] => return Ok(()),
            _ => None,
        };
        let Some(i) = entry else {
            return Err(bad(
                "ADD",
                "--checksum needs exactly one source, a file, archive or URL",
            ));
        };
        let got = self
            .ctx
            .file_digest(i)
            .map_err(|source| PlanErrorKind::Source {
                instruction: "ADD",
                source,
            })?;
        let got = format!("sha256:{}", hex::encode(got));
        if !got.eq_ignore_ascii_case(want) {
            return Err(bad(
                "ADD",
                format!(
                    "checksum mismatch for {}: expected {want}, got {got}",
                    self.ctx.entries()[i].rel
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn image(
        &self,
        instruction: &'static str,
        reference: &str,
    ) -> Result<&BaseImage, PlanErrorKind> {
        self.bases
            .get(reference)
            .ok_or_else(|| PlanErrorKind::MissingImage {
                instruction,
                reference: reference.to_string(),
            })
    }

    pub(super) fn copy(
        &self,
        st: &StageState,
        add: bool,
        c: &CopyArgs,
        from: Option<&BaseRef>,
    ) -> Result<(CopySpec, Vec<u8>), PlanErrorKind> {
        let kw: &'static str = if add { "ADD" } else { "COPY" };
        let mut h = Sha256::new();
        field(&mut h, kw.as_bytes());
        let origin = match from {
            None => CopyOrigin::Context,
            Some(BaseRef::Stage(s)) => {
                let key = self.stage_results.get(s).map(|r| &r.key).ok_or_else(|| {
                    bad(kw, format!("stage {s} was not planned before it is used"))
                })?;
                field(&mut h, key.0.as_bytes());
                CopyOrigin::Stage(*s)
            }
            Some(BaseRef::Image(r)) => {
                let img = self.image(kw, r)?;
                field(&mut h, img.digest.as_bytes());
                CopyOrigin::Image {
                    reference: r.clone(),
                    digest: img.digest.clone(),
                }
            }
            Some(BaseRef::Scratch) => {
                return Err(bad(kw, "--from=scratch has no files to copy"));
            }
        };
        let chown = c.chown.as_deref().map(|v| st.word(kw, v)).transpose()?;
        let chmod = match &c.chmod {
            None => None,
            Some(v) => {
                let v = st.word(kw, v)?;
                match u32::from_str_radix(&v, 8) {
                    Ok(m) if m <= 0o7777 && !v.is_empty() => Some(m),
                    _ => {
                        return Err(bad(
                            kw,
                            format!(
                                "--chmod={v:?}: expected octal permission bits like 644 or 0755"
                            ),
                        ));
                    }
                }
            }
        };
        field(&mut h, chown.as_deref().unwrap_or("").as_bytes());
        field(&mut h, format!("{chmod:?}").as_bytes());
        field(&mut h, if c.link { b"link" } else { b"" });
        let mut exclude = Vec::new();
        for e in &c.exclude {
            exclude.push(st.word(kw, e)?);
        }
        let rules = if exclude.is_empty() {
            None
        } else {
            Some(
                IgnoreRules::parse(&exclude.join("\n"))
                    .map_err(|e| bad(kw, format!("--exclude: {e}")))?,
            )
        };
        if (c.parents || rules.is_some()) && !matches!(origin, CopyOrigin::Context) {
            return Err(PlanErrorKind::Unsupported {
                instruction: kw,
                what: "--parents or --exclude with --from".into(),
            });
        }
        // Fields only when used, so the keys of steps without them stay as they were.
        if c.parents {
            field(&mut h, b"parents");
        }
        for e in &exclude {
            field(&mut h, b"exclude");
            field(&mut h, e.as_bytes());
        }
        let mut sources = Vec::new();
        let mut parent_strip = Vec::new();
        for s in &c.sources {
            match s {
                Source::Heredoc(hd) => {
                    let content = if hd.expand {
                        expand_heredoc(&hd.content, st.escape, &|n: &str| st.lookup(n)).map_err(
                            |source| PlanErrorKind::Subst {
                                instruction: kw,
                                source,
                            },
                        )?
                    } else {
                        hd.content.clone()
                    };
                    field(&mut h, b"inline");
                    field(&mut h, hd.name.as_bytes());
                    field(&mut h, content.as_bytes());
                    sources.push(CopySource::Inline {
                        name: hd.name.clone(),
                        content,
                    });
                }
                Source::Path(p) => {
                    let p = st.word(kw, p)?;
                    if add && is_git_source(&p) {
                        return Err(bad(
                            kw,
                            format!(
                                "{p}: a git repository as a source is not supported by berth (it does not clone during builds); clone it into the build context, or in a RUN step"
                            ),
                        ));
                    }
                    if add && (p.starts_with("http://") || p.starts_with("https://")) {
                        // Keyed by the URL (and the checksum when given), as the classic
                        // builder keys what it has not fetched yet.
                        field(&mut h, b"url");
                        field(&mut h, p.as_bytes());
                        parent_strip.push(String::new());
                        sources.push(CopySource::Url(p));
                        continue;
                    }
                    if add && p.contains("://") {
                        return Err(bad(
                            kw,
                            format!(
                                "{p}: only http and https URLs can be ADDed; download it into the build context, or in a RUN step"
                            ),
                        ));
                    }
                    // `--parents`: what precedes a `/./` is not kept under the destination.
                    let strip = match p.split_once("/./") {
                        Some((before, _)) if c.parents => {
                            let b = clean_path(before.trim_start_matches('/'));
                            if b == "." { String::new() } else { b }
                        }
                        _ => String::new(),
                    };
                    if matches!(origin, CopyOrigin::Context) {
                        let selected =
                            self.ctx
                                .select(&p)
                                .map_err(|source| PlanErrorKind::Source {
                                    instruction: kw,
                                    source,
                                })?;
                        for sel in selected {
                            field(&mut h, b"context");
                            let hashed = match &rules {
                                None => self.ctx.hash_source(&sel, &mut h),
                                Some(r) => hash_kept(self.ctx, &sel, r, &mut h),
                            };
                            hashed.map_err(|source| PlanErrorKind::Source {
                                instruction: kw,
                                source,
                            })?;
                            parent_strip.push(strip.clone());
                            sources.push(CopySource::Context(sel));
                        }
                    } else {
                        field(&mut h, b"path");
                        field(&mut h, p.as_bytes());
                        sources.push(CopySource::Path(p));
                    }
                }
            }
        }
        let dest_raw = st.word(kw, &c.dest)?;
        if dest_raw.is_empty() {
            return Err(bad(kw, "the destination is empty"));
        }
        let dest = absolute(&st.workdir(), &dest_raw);
        // Docker's rule: several sources (given or from a glob) need a `dir/` destination; a
        // glob matching one file copies it like a plain file source.
        let several = sources.len() > 1;
        if several && !dest.ends_with('/') {
            return Err(bad(
                kw,
                format!(
                    "with more than one source file the destination must be a directory and end with a / (got {dest_raw:?})"
                ),
            ));
        }
        field(&mut h, dest.as_bytes());
        let checksum = match &c.checksum {
            None => None,
            Some(v) => {
                let v = st.word(kw, v)?;
                self.verify_checksum(&v, &sources)?;
                field(&mut h, b"checksum");
                field(&mut h, v.as_bytes());
                Some(v)
            }
        };
        let spec = CopySpec {
            add,
            origin,
            sources,
            dest_is_dir: dest.ends_with('/') || several,
            dest,
            chown,
            chmod,
            link: c.link,
            parents: c.parents,
            parent_strip: if c.parents { parent_strip } else { Vec::new() },
            exclude,
            checksum,
        };
        Ok((spec, h.finalize().to_vec()))
    }

    /// A RUN's `--mount`s expanded and checked, with where each one's files come from, and
    /// each one's cache-key material: its definition, plus the content of a context bind or
    /// the key/digest of a stage or image it reads. A secret adds its id, never its value.
    fn mounts(
        &self,
        st: &StageState,
        raw: &[RawMount],
        from: &[&BaseRef],
    ) -> Result<(Vec<PlannedMount>, Vec<serde_json::Value>), PlanErrorKind> {
        let mut froms = from.iter();
        let mut out = Vec::new();
        let mut material = Vec::new();
        let mut ssh = 0usize;
        for r in raw {
            let mut expanded = RawMount {
                fields: Vec::with_capacity(r.fields.len()),
            };
            for (k, v) in &r.fields {
                let v = v.as_deref().map(|v| st.word("RUN", v)).transpose()?;
                expanded.fields.push((k.clone(), v));
            }
            let mut mount = RunMount::parse(&expanded, &st.workdir())
                .map_err(|e| bad("RUN", format!("--mount: {e}")))?;
            if mount.kind == MountKind::Ssh {
                // BuildKit's numbering: the Nth SSH mount of the step without a target.
                mount
                    .target
                    .get_or_insert_with(|| format!("/run/buildkit/ssh_agent.{ssh}"));
                ssh += 1;
            }
            let mut h = Sha256::new();
            let origin = match (&mount.from, mount.kind) {
                (Some(_), _) => match froms.next() {
                    Some(BaseRef::Stage(s)) => {
                        let key = self.stage_results.get(s).map(|r| &r.key).ok_or_else(|| {
                            bad(
                                "RUN",
                                format!("stage {s} was not planned before it is used"),
                            )
                        })?;
                        field(&mut h, key.0.as_bytes());
                        MountOrigin::Stage(*s)
                    }
                    Some(BaseRef::Image(reference)) => {
                        let img = self.image("RUN", reference)?;
                        field(&mut h, img.digest.as_bytes());
                        MountOrigin::Image {
                            reference: reference.clone(),
                            digest: img.digest.clone(),
                        }
                    }
                    Some(BaseRef::Scratch) => {
                        return Err(bad("RUN", "--mount from=scratch has no files"));
                    }
                    None => return Err(bad("RUN", "--mount from= was not resolved")),
                },
                (None, MountKind::Bind) => {
                    let source = mount.source.as_deref().unwrap_or(".");
                    let selected =
                        self.ctx
                            .select(source)
                            .map_err(|source| PlanErrorKind::Source {
                                instruction: "RUN",
                                source,
                            })?;
                    let [sel] = <[_; 1]>::try_from(selected).map_err(|_| {
                        bad(
                            "RUN",
                            format!("--mount source={source} matches more than one path"),
                        )
                    })?;
                    self.ctx
                        .hash_source(&sel, &mut h)
                        .map_err(|source| PlanErrorKind::Source {
                            instruction: "RUN",
                            source,
                        })?;
                    MountOrigin::Context(sel)
                }
                (None, _) => MountOrigin::None,
            };
            material.push(serde_json::json!({
                "mount": mount,
                "files": hex::encode(h.finalize()),
            }));
            out.push(PlannedMount { mount, origin });
        }
        Ok((out, material))
    }

    pub(super) fn instruction(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        from: &[&BaseRef],
        consumed: &mut BTreeSet<String>,
    ) -> Result<(StepKind, ImageConfigDelta, Vec<u8>), PlanErrorKind> {
        use ConfigChange as C;
        let kw = ins.kind.keyword();
        let delta = |c| ImageConfigDelta::one(c);
        let (kind, delta): (StepKind, ImageConfigDelta) = match &ins.kind {
            InstructionKind::Run {
                command,
                heredocs,
                network,
                mounts,
            } => {
                let (argv, script) = match command {
                    Command::Shell(s) if !heredocs.is_empty() => run_with_heredocs(st, s, heredocs),
                    c => (st.shell_argv(c), None),
                };
                let mut env = st.config.env.clone();
                let mut keyed_env = env.clone();
                for (k, v) in st.visible_args() {
                    env.push(format!("{k}={v}"));
                    keyed_env.push(format!("{k}={v}"));
                }
                for p in PROXY_ARGS {
                    if let Some(v) = self.opts.build_args.get(p)
                        && !st.args.iter().any(|(n, _)| n == p)
                        && st.config.env_get(p).is_none()
                    {
                        env.push(format!("{p}={v}"));
                    }
                }
                let (mounts, mount_material) = self.mounts(st, mounts, from)?;
                let spec = RunSpec {
                    argv,
                    script,
                    env,
                    user: st.config.user.clone(),
                    workdir: st.workdir(),
                    network: *network,
                    mounts,
                };
                let mut material = serde_json::json!({
                    "argv": spec.argv, "script": spec.script, "env": keyed_env,
                    "user": spec.user, "workdir": spec.workdir,
                });
                // The network is part of what ran (as in BuildKit), but the default one leaves
                // the key as it was before `--network` existed, so old caches still hit.
                if *network != RunNetworkMode::Default {
                    material["network"] = serde_json::json!(network);
                }
                // The mounts' definitions (and a bind's files), never a secret's content.
                if !mount_material.is_empty() {
                    material["mounts"] = serde_json::json!(mount_material);
                }
                return Ok((
                    StepKind::Run(spec),
                    ImageConfigDelta::default(),
                    material.to_string().into_bytes(),
                ));
            }
            InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                let add = matches!(ins.kind, InstructionKind::Add(_));
                let (spec, material) = self.copy(st, add, c, from.first().copied())?;
                return Ok((StepKind::Copy(spec), ImageConfigDelta::default(), material));
            }
            InstructionKind::Arg(decls) => {
                for ArgDecl { name, default } in decls {
                    let value = match self.opts.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(st.word("ARG", d)?),
                            None => {
                                if st.globals.declared(name) {
                                    st.globals.get(name)
                                } else {
                                    platform_args()
                                        .into_iter()
                                        .find(|(n, _)| n == name)
                                        .map(|(_, v)| v)
                                }
                            }
                        },
                    };
                    consumed.insert(name.clone());
                    st.args.push((name.clone(), value));
                }
                let material = serde_json::json!(
                    decls
                        .iter()
                        .map(|d| (&d.name, &d.default))
                        .collect::<Vec<_>>()
                );
                return Ok((
                    StepKind::Config,
                    ImageConfigDelta::default(),
                    material.to_string().into_bytes(),
                ));
            }
            InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => {
                // Every value sees the variables as they were before this instruction.
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let k = st.word(kw, k)?;
                    if k.is_empty() {
                        return Err(bad(kw, "a name is empty after substitution"));
                    }
                    out.push((k, st.word(kw, v)?));
                }
                if matches!(ins.kind, InstructionKind::Env(_)) {
                    (StepKind::Config, delta(C::Env(out)))
                } else {
                    (StepKind::Config, delta(C::Labels(out)))
                }
            }
            InstructionKind::Maintainer(m) => (StepKind::Config, delta(C::Author(m.clone()))),
            InstructionKind::Workdir(w) => {
                let w = st.word(kw, w)?;
                if w.is_empty() {
                    return Err(bad(kw, "the path is empty after substitution"));
                }
                let abs = absolute(&st.workdir(), &w);
                let abs = if abs.len() > 1 {
                    abs.trim_end_matches('/').to_string()
                } else {
                    abs
                };
                (StepKind::Config, delta(C::WorkingDir(abs)))
            }
            InstructionKind::User(u) => {
                let u = st.word(kw, u)?;
                if u.is_empty() {
                    return Err(bad(kw, "the user is empty after substitution"));
                }
                (StepKind::Config, delta(C::User(u)))
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for w in words {
                    for p in st.words(kw, w)? {
                        ports.extend(parse_ports(&p)?);
                    }
                }
                (StepKind::Config, delta(C::ExposedPorts(ports)))
            }
            InstructionKind::Volume(paths) => {
                let mut out = Vec::new();
                for p in paths {
                    let p = st.word(kw, p)?;
                    if p.trim().is_empty() {
                        return Err(bad(kw, "a volume path is empty after substitution"));
                    }
                    out.push(p);
                }
                (StepKind::Config, delta(C::Volumes(out)))
            }
            InstructionKind::StopSignal(s) => {
                let s = st.word(kw, s)?;
                if !valid_signal(&s) {
                    return Err(bad(kw, format!("invalid signal {s:?}")));
                }
                (StepKind::Config, delta(C::StopSignal(s)))
            }
            InstructionKind::Cmd(c) => {
                // Docker: only a non-empty CMD keeps a later ENTRYPOINT from clearing it.
                st.cmd_set = !matches!(c, Command::Exec(v) if v.is_empty());
                (StepKind::Config, delta(C::Cmd(st.shell_argv(c))))
            }
            InstructionKind::Entrypoint(c) => (
                StepKind::Config,
                delta(C::Entrypoint {
                    entrypoint: st.shell_argv(c),
                    reset_cmd: !st.cmd_set,
                }),
            ),
            InstructionKind::Shell(s) => (StepKind::Config, delta(C::Shell(s.clone()))),
            // Kept as written: the child build expands it with its own args and environment.
            InstructionKind::Onbuild(t) => (StepKind::Config, delta(C::OnBuild(t.clone()))),
            InstructionKind::Healthcheck(h) => {
                let hc = match h {
                    None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Some((o, c)) => HealthConfig {
                        test: match c {
                            Command::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        },
                        interval: nanos(o.interval),
                        timeout: nanos(o.timeout),
                        start_period: nanos(o.start_period),
                        start_interval: nanos(o.start_interval),
                        retries: o.retries.unwrap_or(0),
                    },
                };
                (StepKind::Config, delta(C::Healthcheck(hc)))
            }
        };
        // Serializing plain strings and vectors cannot fail; the delta is the step's material.
        let material = serde_json::to_vec(&delta).unwrap_or_default();
        Ok((kind, delta, material))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_ports("90-92/tcp").unwrap().len(), 3);
        assert!(parse_ports("1.2.3.4:80:80").is_err());
        assert!(parse_ports("80/foo").is_err());
        assert!(parse_ports("92-90").is_err());
        assert!(parse_ports("x").is_err());
    }

    #[test]
    fn signals() {
        for s in ["SIGTERM", "term", "9", "SIGRTMIN+3", "QUIT"] {
            assert!(valid_signal(s), "{s}");
        }
        for s in ["SIGFOO", "0", "99", "RTMIN+99"] {
            assert!(!valid_signal(s), "{s}");
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/app", "."), "/app/");
        assert_eq!(absolute("/app", "x/"), "/app/x/");
        assert_eq!(absolute("/app", "/y"), "/y");
        assert_eq!(absolute("/", "a/../b"), "/b");
        assert_eq!(absolute("/", "/"), "/");
    }
}
