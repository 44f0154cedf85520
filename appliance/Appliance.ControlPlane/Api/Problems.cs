using Isthmus.DataPlane.Programming;
using Microsoft.AspNetCore.Http;

namespace Isthmus.ControlPlane.Api;

/// <summary>RFC 9457 problem details for configuration errors: <c>errors</c> is keyed by field path.</summary>
public static class Problems
{
    public static IResult Invalid(IReadOnlyList<ProgramError> errors, string title = "The configuration is not valid")
    {
        var byPath = errors
            .GroupBy(e => e.Path, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray(), StringComparer.Ordinal);
        return TypedResults.ValidationProblem(
            byPath,
            detail: $"{errors.Count} error(s); nothing was applied. Each key is the path of the field to fix.",
            title: title,
            type: "https://isthmus.invalid/problems/invalid-configuration");
    }

    public static IResult Invalid(string path, string message) => Invalid([new ProgramError(path, message)], "The request is not valid");
}
