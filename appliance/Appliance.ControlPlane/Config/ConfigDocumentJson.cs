using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Config;

/// <summary>
/// Reads and writes <see cref="ConfigDocument"/> as one flat JSON object. The control plane's own keys
/// (<see cref="ControlPlaneKeys"/>) are taken out by name; everything else is the data-plane program and
/// is bound straight to <see cref="DataPlaneProgram"/>. That is why a section another issue adds to the
/// program (firewall, NAT, gateways) flows through the store, the API and the diff without a change here.
/// </summary>
public static class ConfigDocumentJson
{
    public const string DataPlaneKey = "dataPlane";
    public const string UsersKey = "users";
    public const string ApiTokensKey = "apiTokens";
    public const string BgpKey = "bgp";
    public const string MobilityKey = "mobility";

    public static readonly IReadOnlySet<string> ControlPlaneKeys = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { DataPlaneKey, UsersKey, ApiTokensKey, BgpKey, MobilityKey };

    /// <summary>Strict: unknown keys are errors (a typo must not silently drop a setting).</summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
    };

    private static readonly JsonNodeOptions NodeOptions = new() { PropertyNameCaseInsensitive = false };
    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Parses a document; the errors (JSON syntax or binding) carry document paths.</summary>
    public static ConfigParseResult Parse(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, NodeOptions, DocumentOptions);
        }
        catch (JsonException e)
        {
            return new(null, null, [new ProgramError(CleanPath(e.Path), $"not valid JSON: {e.Message}")]);
        }

        return node is JsonObject root
            ? Parse(root)
            : new(null, null, [new ProgramError("$", "the configuration must be a JSON object")]);
    }

    /// <summary>
    /// Binds a parsed object. The UTF-8 text is bound twice, straight from bytes (no per-section node
    /// copies: a 10,000-rule firewall must parse in milliseconds): once as <see cref="DataPlaneProgram"/>
    /// skipping the control plane's keys, once as the control-plane section skipping the program's. Unknown
    /// top-level keys are reported by name. Every section is bound even if another fails, so all report.
    /// </summary>
    public static ConfigParseResult Parse(JsonObject root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var errors = new List<ProgramError>();
        foreach (var (key, _) in root)
        {
            if (!ControlPlaneKeys.Contains(key) && !ProgramKeys.Contains(key))
            {
                errors.Add(new ProgramError(key, $"unknown setting '{key}' (known: {string.Join(", ", ProgramKeys.Concat(ControlPlaneKeys).Order(StringComparer.Ordinal))})"));
            }
        }

        var utf8 = JsonSerializer.SerializeToUtf8Bytes(root, Options);
        var program = Bind<DataPlaneProgram>(utf8, "", ProgramOptions, errors);
        var control = Bind<ControlSection>(utf8, "", Options, errors);
        var document = new ConfigDocument
        {
            DataPlane = control?.DataPlane ?? new(),
            Program = program ?? new(),
            Users = control?.Users ?? [],
            ApiTokens = control?.ApiTokens ?? [],
            Bgp = control?.Bgp,
            Mobility = control?.Mobility,
        };
        return new(errors.Count == 0 ? document : null, root, errors);
    }

    /// <summary>The program's own top-level keys, as the serializer names them.</summary>
    public static readonly IReadOnlySet<string> ProgramKeys =
        Options.GetTypeInfo(typeof(DataPlaneProgram)).Properties.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>As <see cref="Options"/>, except that the top level of the program skips keys it does not know (the control plane's).</summary>
    private static readonly JsonSerializerOptions ProgramOptions = new(Options)
    {
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                static info =>
                {
                    if (info.Type == typeof(DataPlaneProgram))
                    {
                        info.UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip;
                    }
                },
            },
        },
    };

    /// <summary>The control plane's keys of the document; the program's keys are skipped here.</summary>
    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Skip)]
    private sealed record ControlSection
    {
        public DataPlaneSettings? DataPlane { get; init; }

        public List<UserSpec>? Users { get; init; }

        public List<ApiTokenSpec>? ApiTokens { get; init; }

        public BgpSettings? Bgp { get; init; }

        public MobilitySettings? Mobility { get; init; }
    }

    public static JsonObject ToNode(ConfigDocument document)
    {
        var root = new JsonObject { [DataPlaneKey] = JsonSerializer.SerializeToNode(document.DataPlane, Options) };
        var program = JsonSerializer.SerializeToNode(document.Program, Options)!.AsObject();
        foreach (var (key, value) in program.ToList())
        {
            program.Remove(key);
            root[key] = value;
        }

        if (document.Bgp is not null)
        {
            root[BgpKey] = JsonSerializer.SerializeToNode(document.Bgp, Options);
        }

        if (document.Mobility is not null)
        {
            root[MobilityKey] = JsonSerializer.SerializeToNode(document.Mobility, Options);
        }

        root[UsersKey] = JsonSerializer.SerializeToNode(document.Users, Options);
        root[ApiTokensKey] = JsonSerializer.SerializeToNode(document.ApiTokens, Options);
        return root;
    }

    public static string ToJson(ConfigDocument document) => ToNode(document).ToJsonString(Options);

    private static T? Bind<T>(byte[] utf8, string prefix, JsonSerializerOptions options, List<ProgramError> errors)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(utf8, options);
        }
        catch (JsonException e)
        {
            var inner = CleanPath(e.Path);
            var path = prefix.Length == 0 ? inner : inner == "$" ? prefix : inner.StartsWith('[') ? prefix + inner : $"{prefix}.{inner}";
            errors.Add(new ProgramError(path, Explain(e)));
            return null;
        }
    }

    /// <summary>"$.bridgeDomains[0].vlan" → "bridgeDomains[0].vlan": the same paths the compiler reports.</summary>
    private static string CleanPath(string? path) =>
        path is null or "$" ? "$" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.StartsWith('$') ? path[1..] : path;

    private static string Explain(JsonException e)
    {
        // System.Text.Json's messages name CLR types; keep the part an operator can act on.
        var message = e.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}

/// <param name="Document">The bound document, or null when there were errors.</param>
/// <param name="Raw">The parsed JSON, when it was JSON at all.</param>
public sealed record ConfigParseResult(ConfigDocument? Document, JsonObject? Raw, IReadOnlyList<ProgramError> Errors);
