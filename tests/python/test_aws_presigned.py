"""Presigned STS URLs and session tokens with boto3, unmodified, against the
local cloud's AWS port, as AWS answers them.

A presigned `GetCallerIdentity` URL made by `generate_presigned_url` (the form
EKS tokens and Vault's AWS auth method build on) verifies, with the user's keys
or a role session's, and with EKS's signed `x-k8s-aws-id` header added the way
`aws eks get-token` adds it; changing that header, the method, or asking for
more than a week of `X-Amz-Expires` is refused with AWS's codes. A long-term
key sent with a session token is an invalid token, as AWS says.

The URLs point at the local cloud only (its `endpoint_url`): nothing reaches AWS.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import requests

HERE = Path(__file__).resolve().parent
WORLD = HERE / "worlds" / "aws-signing.toml"
ACCOUNT = "210987654321"
SECRET = "presigned-db-pass-41c7"
K8S_HEADER = "x-k8s-aws-id"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    from conftest import running_cloud

    with running_cloud(WORLD, tmp_path_factory.mktemp("aws-signing")) as c:
        yield c


def user_keys(cloud) -> dict[str, str]:
    path = cloud.endpoints["aws_users"][f"{ACCOUNT}/signer"]["credentials_file"]
    cp = configparser.ConfigParser()
    cp.read(path)
    return {"aws_access_key_id": cp["default"]["aws_access_key_id"], "aws_secret_access_key": cp["default"]["aws_secret_access_key"]}


def client(cloud, service: str, **creds):
    return boto3.client(service, region_name="us-east-1", endpoint_url=cloud.endpoints["aws"], **creds)


def session_keys(cloud) -> dict[str, str]:
    c = client(cloud, "sts", **user_keys(cloud)).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-admin", RoleSessionName="eks-user"
    )["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"], "aws_session_token": c["SessionToken"]}


def eks_sts_client(cloud, **creds):
    """An STS client that signs EKS's cluster header into GetCallerIdentity, as
    awscli's `eks get-token` registers it."""
    sts = client(cloud, "sts", **creds)

    def take_cluster(params, context, **kwargs):
        if K8S_HEADER in params:
            context[K8S_HEADER] = params.pop(K8S_HEADER)

    def add_header(request, **kwargs):
        if K8S_HEADER in request.context:
            request.headers[K8S_HEADER] = request.context[K8S_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take_cluster)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
    return sts


def xml(text: str, tag: str) -> str:
    start = text.index(f"<{tag}>") + len(tag) + 2
    return text[start : text.index(f"</{tag}>", start)]


@pytest.mark.parametrize("who", ["user", "session"])
def test_presigned_get_caller_identity_verifies(cloud, who):
    creds = user_keys(cloud) if who == "user" else session_keys(cloud)
    url = client(cloud, "sts", **creds).generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    assert "X-Amz-SignedHeaders=host&" in url and ("X-Amz-Security-Token=" in url) == (who == "session")
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    want = f"arn:aws:iam::{ACCOUNT}:user/signer" if who == "user" else f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-admin/eks-user"
    assert xml(r.text, "Arn") == want


@pytest.mark.parametrize("who", ["user", "session"])
def test_an_eks_token_url_verifies_with_its_cluster_header(cloud, who):
    creds = user_keys(cloud) if who == "user" else session_keys(cloud)
    url = eks_sts_client(cloud, **creds).generate_presigned_url(
        "get_caller_identity", Params={K8S_HEADER: "prod-cluster"}, ExpiresIn=60, HttpMethod="GET"
    )
    assert "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" in url
    r = requests.get(url, headers={K8S_HEADER: "prod-cluster"}, timeout=10)
    assert r.status_code == 200, r.text
    assert xml(r.text, "Account") == ACCOUNT
    # The token names its cluster: presented to another, the signature fails.
    r = requests.get(url, headers={K8S_HEADER: "other-cluster"}, timeout=10)
    assert (r.status_code, xml(r.text, "Code")) == (403, "SignatureDoesNotMatch"), r.text


def test_a_url_signed_for_post_is_not_a_get(cloud):
    # Without HttpMethod, boto3 signs STS's own method (POST); fetched with GET,
    # AWS answers SignatureDoesNotMatch too (boto/boto3#756 shows its answer).
    url = client(cloud, "sts", **user_keys(cloud)).generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60)
    r = requests.get(url, timeout=10)
    assert (r.status_code, xml(r.text, "Code")) == (403, "SignatureDoesNotMatch"), r.text
    r = requests.post(url, timeout=10)
    assert r.status_code == 200, r.text


def test_more_than_a_week_of_expires_is_refused(cloud):
    sts = client(cloud, "sts", **user_keys(cloud))
    ok = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=604800, HttpMethod="GET")
    assert requests.get(ok, timeout=10).status_code == 200
    for seconds in (604801, 100 * 365 * 86400):
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=seconds, HttpMethod="GET")
        r = requests.get(url, timeout=10)
        assert (r.status_code, xml(r.text, "Code")) == (400, "AuthorizationQueryParametersError"), r.text
        assert xml(r.text, "Message").startswith("X-Amz-Expires must be less than a week"), r.text


def test_a_long_term_key_with_a_session_token_is_an_invalid_token(cloud):
    keys = user_keys(cloud)
    assert keys["aws_access_key_id"].startswith("AKIA")
    sm = client(cloud, "secretsmanager", **keys)
    assert sm.get_secret_value(SecretId="signing/db")["SecretString"] == SECRET
    # The user's own key with a (real) session token of the cloud beside it.
    token = session_keys(cloud)["aws_session_token"]
    sm = client(cloud, "secretsmanager", **keys, aws_session_token=token)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId="signing/db")
    err = e.value.response["Error"]
    assert err["Code"] == "UnrecognizedClientException", err
    assert err["Message"] == "The security token included in the request is invalid."
    assert SECRET not in str(e.value.response)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(cloud, "sts", **keys, aws_session_token=token).get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
