package prebuilds_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestPresetCloneDoesNotAlias(t *testing.T) {
	t.Parallel()
	desired := 3
	p := prebuilds.Preset{
		ID: uuid.New(), TemplateVersionID: uuid.New(), Name: "p", Desired: &desired, TTL: time.Hour,
		Schedules:  []prebuilds.Schedule{{Cron: "0 9 * * 1-5", Instances: 5}},
		Parameters: map[string]string{"size": "large"},
	}
	c := p.Clone()
	require.Equal(t, p, c)

	*c.Desired = 7
	c.Schedules[0].Instances = 9
	c.Parameters["size"] = "small"
	require.Equal(t, 3, *p.Desired)
	require.Equal(t, 5, p.Schedules[0].Instances)
	require.Equal(t, "large", p.Parameters["size"])

	empty := prebuilds.Preset{Schedules: []prebuilds.Schedule{}, Parameters: map[string]string{}}.Clone()
	require.Nil(t, empty.Schedules)
	require.Nil(t, empty.Parameters)
	require.Nil(t, empty.Desired)
}

func TestNewPresetRow(t *testing.T) {
	t.Parallel()
	desired := 2
	p := prebuilds.Preset{ID: uuid.New(), TemplateVersionID: uuid.New(), Desired: &desired, Parameters: map[string]string{"k": "v"}}
	tmpl := prebuilds.Template{
		ID: uuid.New(), OrganizationID: uuid.New(), OrganizationName: "org", Name: "tmpl",
		ActiveVersionID: p.TemplateVersionID, Deprecated: true, Deleted: true,
	}
	row := prebuilds.NewPresetRow(p, tmpl)
	require.Equal(t, prebuilds.PresetRow{
		Preset: p, TemplateID: tmpl.ID, TemplateName: "tmpl", OrganizationID: tmpl.OrganizationID,
		OrganizationName: "org", ActiveVersionID: tmpl.ActiveVersionID, Deprecated: true, Deleted: true,
	}, row)
	row.Parameters["k"] = "changed"
	require.Equal(t, "v", p.Parameters["k"], "the row holds a copy of the preset")
}
