//! A baseline Terraform provider on the `tf-provider` crate: one trivial data source,
//! `baseline_echo`, which copies `input` to `output`. Only the benchmarks run it.

use std::collections::HashMap;

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{ValueEmpty, ValueString};
use tf_provider::{map, serve, DataSource, Diagnostics, DynamicDataSource, Provider};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EchoState<'a> {
    #[serde(borrow = "'a")]
    input: ValueString<'a>,
    #[serde(borrow = "'a")]
    output: ValueString<'a>,
}

struct EchoDataSource;

#[async_trait]
impl DataSource for EchoDataSource {
    type State<'a> = EchoState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain("Copies input to output."),
                attributes: map! {
                    "input" => Attribute {
                        attr_type: AttributeType::String,
                        description: Description::plain("Any string."),
                        constraint: AttributeConstraint::Required,
                        ..Default::default()
                    },
                    "output" => Attribute {
                        attr_type: AttributeType::String,
                        description: Description::plain("The input, unchanged."),
                        constraint: AttributeConstraint::Computed,
                        ..Default::default()
                    }
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        _diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let mut state = config;
        state.output = state.input.clone();
        Some(state)
    }
}

struct BaselineProvider;

#[async_trait]
impl Provider for BaselineProvider {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain("baseline"),
                ..Default::default()
            },
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "echo" => EchoDataSource
        })
    }
}

// The same runtime shape as terraform-provider-mig's main, so RSS compares like for like.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    serve("baseline", BaselineProvider).await
}
