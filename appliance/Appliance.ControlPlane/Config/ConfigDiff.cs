using System.Text.Json.Nodes;

namespace Isthmus.ControlPlane.Config;

public enum DiffOp
{
    Added,
    Removed,
    Changed,
}

/// <summary>One difference between two documents, at a path like <c>bridgeDomains[0].segments[1].vlan</c>.</summary>
public sealed record DiffEntry(DiffOp Op, string Path, JsonNode? Old, JsonNode? New);

/// <summary>
/// A JSON-path-level diff of two documents: objects by key, arrays by index, leaves by value. The
/// paths are the ones validation errors use, so an operator reads both the same way.
/// </summary>
public static class ConfigDiff
{
    public static IReadOnlyList<DiffEntry> Compare(JsonNode? from, JsonNode? to)
    {
        var result = new List<DiffEntry>();
        Walk(from, to, "", result);
        return result;
    }

    private static void Walk(JsonNode? a, JsonNode? b, string path, List<DiffEntry> result)
    {
        if (a is JsonObject oa && b is JsonObject ob)
        {
            foreach (var (key, va) in oa)
            {
                var child = path.Length == 0 ? key : $"{path}.{key}";
                if (ob.TryGetPropertyValue(key, out var vb))
                {
                    Walk(va, vb, child, result);
                }
                else
                {
                    result.Add(new DiffEntry(DiffOp.Removed, child, va?.DeepClone(), null));
                }
            }

            foreach (var (key, vb) in ob)
            {
                if (!oa.ContainsKey(key))
                {
                    result.Add(new DiffEntry(DiffOp.Added, path.Length == 0 ? key : $"{path}.{key}", null, vb?.DeepClone()));
                }
            }

            return;
        }

        if (a is JsonArray aa && b is JsonArray ab)
        {
            var common = Math.Min(aa.Count, ab.Count);
            for (var i = 0; i < common; i++)
            {
                Walk(aa[i], ab[i], $"{path}[{i}]", result);
            }

            for (var i = common; i < aa.Count; i++)
            {
                result.Add(new DiffEntry(DiffOp.Removed, $"{path}[{i}]", aa[i]?.DeepClone(), null));
            }

            for (var i = common; i < ab.Count; i++)
            {
                result.Add(new DiffEntry(DiffOp.Added, $"{path}[{i}]", null, ab[i]?.DeepClone()));
            }

            return;
        }

        if (!JsonNode.DeepEquals(a, b))
        {
            result.Add(new DiffEntry(DiffOp.Changed, path.Length == 0 ? "$" : path, a?.DeepClone(), b?.DeepClone()));
        }
    }
}
