//! The object-safe form of [`MetricSource`], for the functions that hold a
//! metric source behind a trait object (pipeline-action's `Deps`,
//! deploy-hook's `Gates`) without another type parameter. One definition
//! for both; every `MetricSource` is one.

use super::{AlarmState, MetricRequest, MetricSource, Series, SourceError};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, for the object-safe port.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`MetricSource`] as a trait object.
pub trait DynMetricSource: Send + Sync + fmt::Debug {
    /// [`MetricSource::metric_data`].
    fn metric_data<'a>(
        &'a self,
        request: &'a MetricRequest,
    ) -> BoxFuture<'a, Result<Vec<Series>, SourceError>>;
    /// [`MetricSource::alarm_states`].
    fn alarm_states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<AlarmState>, SourceError>>;
    /// [`MetricSource::metric_exists`].
    fn metric_exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, SourceError>>;
}

impl<M: MetricSource + fmt::Debug> DynMetricSource for M {
    fn metric_data<'a>(
        &'a self,
        request: &'a MetricRequest,
    ) -> BoxFuture<'a, Result<Vec<Series>, SourceError>> {
        Box::pin(MetricSource::metric_data(self, request))
    }
    fn alarm_states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<AlarmState>, SourceError>> {
        Box::pin(MetricSource::alarm_states(self, names))
    }
    fn metric_exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(MetricSource::metric_exists(self, namespace, name))
    }
}

/// A `&dyn DynMetricSource` as a [`MetricSource`] again, for
/// [`super::measure`] and [`super::preflight`].
#[derive(Debug, Clone, Copy)]
pub struct AsSource<'a>(pub &'a dyn DynMetricSource);

impl MetricSource for AsSource<'_> {
    async fn metric_data(&self, request: &MetricRequest) -> Result<Vec<Series>, SourceError> {
        self.0.metric_data(request).await
    }
    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>, SourceError> {
        self.0.alarm_states(names).await
    }
    async fn metric_exists(&self, namespace: &str, name: &str) -> Result<bool, SourceError> {
        self.0.metric_exists(namespace, name).await
    }
}
