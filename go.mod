module github.com/livechunk/livechunk

go 1.26

require (
	github.com/Eyevinn/mp4ff v0.56.0 // indirect
	github.com/bluenviron/mediacommon/v2 v2.9.5 // indirect
	github.com/johannesboyne/gofakes3 v1.2.0 // indirect
	github.com/ryszard/goskiplist v0.0.0-20150312221310-2dfbae5fcf46 // indirect
	go.shabbyrobe.org/gocovmerge v0.0.0-20230507111327-fa4f82cfbf4d // indirect
	gocloud.dev v0.47.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/tools v0.8.0 // indirect
)
