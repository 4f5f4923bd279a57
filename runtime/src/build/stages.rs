//! Stage resolution: which stage is the target, what each stage is based on, which stages the
//! target needs (through `FROM <stage>`, `COPY --from=<stage>` and `RUN --mount=from=<stage>`);
//! the rest are skipped, as BuildKit does. References only point backwards: a stage can use
//! earlier stages, never itself or later ones, so file order is a valid build order.

use thiserror::Error;

use super::dockerfile::{Dockerfile, InstructionKind};

/// A stage reference that cannot be resolved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StageError {
    /// `--target` names no stage.
    #[error("target stage {target:?} not found (stages: {available})")]
    UnknownTarget {
        /// What was asked.
        target: String,
        /// The stage names, for the message.
        available: String,
    },
    /// `FROM x` or `COPY --from=x` naming the current or a later stage.
    #[error(
        "{reference:?} refers to stage {stage} which is not defined before this point (a stage can only use earlier stages)"
    )]
    ForwardReference {
        /// The instruction's line.
        line: usize,
        /// The reference as expanded.
        reference: String,
        /// The stage it names.
        stage: String,
    },
    /// `COPY --from=7` with fewer stages.
    #[error(
        "--from={index} refers to stage {index}, but only stages 0..{available} come before it"
    )]
    BadIndex {
        /// The instruction's line.
        line: usize,
        /// The index given.
        index: usize,
        /// How many stages precede.
        available: usize,
    },
}

impl StageError {
    /// The Dockerfile line the error is about (0 for `--target`).
    pub fn line(&self) -> usize {
        match self {
            StageError::UnknownTarget { .. } => 0,
            StageError::ForwardReference { line, .. } | StageError::BadIndex { line, .. } => *line,
        }
    }
}

/// What a stage starts from, or what a `COPY --from` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// `FROM scratch`: an empty filesystem and config.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (expanded), resolved by the image store.
    Image(String),
}

/// Resolve a name (after substitution) against the stages before `before`.
pub fn resolve_ref(
    df: &Dockerfile,
    name: &str,
    before: usize,
    line: usize,
    numeric_is_stage: bool,
) -> Result<BaseRef, StageError> {
    if name.eq_ignore_ascii_case("scratch") {
        return Ok(BaseRef::Scratch);
    }
    if numeric_is_stage && let Ok(index) = name.parse::<usize>() {
        if index < before {
            return Ok(BaseRef::Stage(index));
        }
        return Err(StageError::BadIndex {
            line,
            index,
            available: before,
        });
    }
    let lower = name.to_ascii_lowercase();
    if let Some(s) = df.stages.iter().find(|s| s.name.as_deref() == Some(&lower)) {
        if s.index < before {
            return Ok(BaseRef::Stage(s.index));
        }
        return Err(StageError::ForwardReference {
            line,
            reference: name.to_string(),
            stage: lower,
        });
    }
    Ok(BaseRef::Image(name.to_string()))
}

/// Index of the target stage (`--target`, else the last).
pub fn target_index(df: &Dockerfile, target: Option<&str>) -> Result<usize, StageError> {
    let Some(t) = target else {
        return df
            .stages
            .len()
            .checked_sub(1)
            .ok_or_else(|| StageError::UnknownTarget {
                target: "(last stage)".to_string(),
                available: "none".to_string(),
            });
    };
    let lower = t.to_ascii_lowercase();
    df.stages
        .iter()
        .find(|s| s.name.as_deref() == Some(&lower))
        .map(|s| s.index)
        .ok_or_else(|| StageError::UnknownTarget {
            target: t.to_string(),
            available: df
                .stages
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// For each stage: its base and the stages its `COPY --from` reads. `expand_from` expands the
/// FROM base (global ARGs) and `expand_copy_from` a `--from` value.
pub struct StageGraph {
    /// The target stage.
    pub target: usize,
    /// Per stage, its base.
    pub bases: Vec<BaseRef>,
    /// Per stage, the `--from` references of its COPY instructions and the `from=` of its
    /// RUN mounts, in instruction order (line, reference).
    pub copy_froms: Vec<Vec<(usize, BaseRef)>>,
    /// Needed stages in build (file) order.
    pub needed: Vec<usize>,
}

impl StageGraph {
    /// Build the graph; substitution is supplied by the planner (it owns the ARG scopes).
    pub fn resolve<E>(
        df: &Dockerfile,
        target: Option<&str>,
        mut expand_from: impl FnMut(usize) -> Result<String, E>,
        mut expand_copy_from: impl FnMut(usize, usize, &str) -> Result<String, E>,
    ) -> Result<StageGraph, E>
    where
        E: From<StageError>,
    {
        let target = target_index(df, target)?;
        let mut bases = Vec::new();
        let mut copy_froms = Vec::new();
        for stage in &df.stages {
            let base = expand_from(stage.index)?;
            bases.push(resolve_ref(df, &base, stage.index, stage.line, false)?);
            let mut froms = Vec::new();
            for ins in &stage.instructions {
                let written: Vec<&str> = match &ins.kind {
                    InstructionKind::Copy(c) => c.from.as_deref().into_iter().collect(),
                    InstructionKind::Run { mounts, .. } => {
                        mounts.iter().filter_map(|m| m.from()).collect()
                    }
                    _ => Vec::new(),
                };
                for f in written {
                    let name = expand_copy_from(stage.index, ins.line, f)?;
                    froms.push((
                        ins.line,
                        resolve_ref(df, &name, stage.index, ins.line, true)?,
                    ));
                }
            }
            copy_froms.push(froms);
        }
        let mut needed = vec![false; df.stages.len()];
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if std::mem::replace(&mut needed[s], true) {
                continue;
            }
            if let BaseRef::Stage(b) = bases[s] {
                stack.push(b);
            }
            for (_, r) in &copy_froms[s] {
                if let BaseRef::Stage(b) = r {
                    stack.push(*b);
                }
            }
        }
        let needed = (0..df.stages.len()).filter(|i| needed[*i]).collect();
        Ok(StageGraph {
            target,
            bases,
            copy_froms,
            needed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(src: &str, target: Option<&str>) -> Result<StageGraph, StageError> {
        let df = Dockerfile::parse(src, "Dockerfile").unwrap();
        let bases: Vec<String> = df.stages.iter().map(|s| s.base.clone()).collect();
        StageGraph::resolve(
            &df,
            target,
            |i| Ok::<_, StageError>(bases[i].clone()),
            |_, _, f| Ok(f.to_string()),
        )
    }

    const MULTI: &str = "FROM debian AS base\nRUN a\nFROM base AS build\nRUN b\nFROM alpine AS unused\nRUN c\nFROM scratch\nCOPY --from=build /x /x\nCOPY --from=nginx:1 /y /y\n";

    #[test]
    fn needed_stages_skip_unused() {
        let g = graph(MULTI, None).unwrap();
        assert_eq!(g.target, 3);
        assert_eq!(g.needed, vec![0, 1, 3]);
        assert_eq!(g.bases[1], BaseRef::Stage(0));
        assert_eq!(g.bases[3], BaseRef::Scratch);
        assert_eq!(g.copy_froms[3][1].1, BaseRef::Image("nginx:1".into()));
        let g = graph(MULTI, Some("BUILD")).unwrap();
        assert_eq!(g.needed, vec![0, 1]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            graph(MULTI, Some("nope")),
            Err(StageError::UnknownTarget { .. })
        ));
        assert!(matches!(
            graph("FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\n", None),
            Err(StageError::ForwardReference { line: 2, .. })
        ));
        assert!(matches!(
            graph("FROM a AS x\nCOPY --from=x /a /b\n", None),
            Err(StageError::ForwardReference { .. })
        ));
        assert!(matches!(
            graph("FROM a\nCOPY --from=1 /a /b\n", None),
            Err(StageError::BadIndex { index: 1, .. })
        ));
        let g = graph("FROM a\nFROM b\nCOPY --from=0 /a /b\n", None).unwrap();
        assert_eq!(g.needed, vec![0, 1]);
        let g = graph(
            "FROM a AS src\nFROM b AS unused\nFROM c\nRUN --mount=from=src,target=/s --mount=type=cache,from=img:1,target=/c x\n",
            None,
        )
        .unwrap();
        assert_eq!(g.needed, vec![0, 2]);
        assert_eq!(g.copy_froms[2][1].1, BaseRef::Image("img:1".into()));
    }
}
