using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Config;

public sealed class ConfigDocumentJsonTests
{
    [Fact]
    public void A_document_round_trips_with_program_sections_at_the_top_level()
    {
        var parsed = ConfigDocumentJson.Parse(Documents.Lab().ToJsonString());
        Assert.Empty(parsed.Errors);
        var doc = parsed.Document!;
        Assert.Equal(3, doc.Program.Ports.Count);
        Assert.Equal(Role.ReadOnly, doc.ApiTokens[1].Role);
        var node = ConfigDocumentJson.ToNode(doc);
        Assert.Equal("read-only", (string)node["apiTokens"]![1]!["role"]!);
        Assert.NotNull(node["bridgeDomains"]);
        Assert.Equal(ConfigDocumentJson.ToJson(doc), ConfigDocumentJson.ToJson(ConfigDocumentJson.Parse(node).Document!));
    }

    [Fact]
    public void Unknown_keys_are_errors_at_their_path_not_silently_dropped()
    {
        var doc = Documents.Lab();
        doc["bridgeDomain"] = new JsonArray();
        doc["users"]![0]!["pasword"] = "x";
        var errors = ConfigDocumentJson.Parse(doc).Errors.Select(e => e.Path).ToList();
        Assert.Contains("bridgeDomain", errors);
        Assert.Contains(errors, p => p.StartsWith("users[0]", StringComparison.Ordinal));
    }

    [Fact]
    public void Syntax_errors_are_reported_with_a_path()
    {
        var result = ConfigDocumentJson.Parse("{ \"ports\": [ { \"name\": } ] }");
        Assert.Null(result.Document);
        Assert.Single(result.Errors);
        Assert.Equal("$", ConfigDocumentJson.Parse("[1]").Errors[0].Path);
    }
}

public sealed class ConfigDiffTests
{
    [Fact]
    public void Objects_by_key_arrays_by_index_leaves_by_value()
    {
        var a = JsonNode.Parse("""{"x":1,"list":[{"v":1},{"v":2}],"gone":true}""");
        var b = JsonNode.Parse("""{"x":2,"list":[{"v":1},{"v":3},{"v":4}],"new":"y"}""");
        var diff = ConfigDiff.Compare(a, b).Select(d => (d.Op, d.Path)).ToList();
        Assert.Equal(
            [(DiffOp.Changed, "x"), (DiffOp.Changed, "list[1].v"), (DiffOp.Added, "list[2]"), (DiffOp.Removed, "gone"), (DiffOp.Added, "new")],
            diff);
        Assert.Empty(ConfigDiff.Compare(a, a!.DeepClone()));
    }
}

public sealed class CredentialsTests
{
    [Fact]
    public void Passwords_are_hashed_with_password_hasher_and_tokens_with_sha256()
    {
        var hash = Credentials.HashPassword("alice", "correct horse");
        Assert.True(Credentials.LooksLikePasswordHash(hash));
        Assert.True(Credentials.VerifyPassword("alice", hash, "correct horse"));
        Assert.False(Credentials.VerifyPassword("alice", hash, "wrong"));
        Assert.False(Credentials.VerifyPassword("alice", "garbage", "x"));
        Assert.False(Credentials.LooksLikePasswordHash("hunter2"));

        var token = Credentials.NewToken();
        Assert.StartsWith("ist_", token, StringComparison.Ordinal);
        Assert.True(Credentials.LooksLikeTokenHash(Credentials.HashToken(token)));
        Assert.NotEqual(Credentials.NewToken(), token);
        Assert.False(Credentials.LooksLikeTokenHash("sha256:XYZ"));
    }
}
