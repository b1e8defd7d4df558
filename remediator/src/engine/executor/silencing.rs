//! Alertmanager silences while a run's fix is applied (see [`super::super::silences`]).

use super::super::silences::Silence;
use super::Executor;
use crate::config::Rule;
use crate::journal::runs::RunRow;
use crate::lifecycle::RunKind;

impl Executor {
    /// Silences the alert while its fix runs, where configured and safe (see
    /// [`super::silences`]). `None` when no silence was asked for.
    pub(super) async fn silence(
        &self,
        run: &RunRow,
        rule: &Rule,
    ) -> Option<Result<Silence, String>> {
        let silencer = self.inner.silencer.as_ref()?;
        if run.kind != RunKind::Apply || rule.action.can_restore() {
            return None;
        }
        let comment = format!(
            "koji-remediator run {}: {} ({}) in progress",
            run.id,
            rule.action.name(),
            rule.name
        );
        let created = silencer.create(&run.labels, &comment).await;
        self.count_silence("create", created.is_ok());
        match &created {
            Ok(silence) => {
                tracing::info!(run = run.id, silence = %silence.id, "alert silenced while the fix runs")
            }
            Err(error) => {
                tracing::warn!(run = run.id, %error, "cannot silence the alert; fixing anyway")
            }
        }
        Some(created)
    }

    /// Removes the run's silence; returns what the run's outcome should say about it.
    pub(super) async fn end_silence(&self, silence: Option<Result<Silence, String>>) -> String {
        let (Some(silencer), Some(silence)) = (&self.inner.silencer, silence) else {
            return String::new();
        };
        let silence = match silence {
            Ok(silence) => silence,
            Err(error) => return format!("; no Alertmanager silence ({error})"),
        };
        let removed = silencer.remove(&silence).await;
        self.count_silence("remove", removed.is_ok());
        match removed {
            Ok(()) => format!(
                "; alert silenced in Alertmanager while it ran ({})",
                silence.id
            ),
            Err(error) => {
                tracing::warn!(silence = %silence.id, %error, "cannot remove a silence; it expires by itself");
                format!(
                    "; Alertmanager silence {} not removed ({error}); it expires by itself",
                    silence.id
                )
            }
        }
    }

    pub(super) fn count_silence(&self, operation: &str, ok: bool) {
        self.inner
            .metrics
            .silence_requests
            .get_or_create(&crate::metrics::SilenceLabels {
                operation: operation.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }
}
